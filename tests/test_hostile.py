"""Hostile and broken archives: one clear line and exit 2 (or exit 1 for failed verification), bounded
time and memory, and extraction that never writes outside its target."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from hostile import BASE, CASES, CODES, _good_manifest, _legacy, _special_export, _tar
from tarmaker import layer_bytes, legacy_save

from saveexport import cli
from saveexport.archives import Archive, flatten, verify
from saveexport.archives.extract import extract
from saveexport.archives.source import Limits
from saveexport.errors import ArchiveError


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_inspect_answers_hostile_input_with_one_line_and_the_right_exit(tmp_path, capsys, name, build, expected):
    path = build(tmp_path)
    started = time.monotonic()
    code = cli.main(["inspect", str(path)])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == expected, (out, err)
    assert elapsed < 20
    if expected == 2:
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("saveexport: "), err
        assert "Traceback" not in err
    elif expected == 1:
        assert "violation" in out and err == ""
    else:
        assert err == ""


@pytest.mark.parametrize("name", ["pax-header-bomb", "gnu-longname-bomb", "json-too-large", "json-nested-too-deep"])
def test_bombs_stay_within_bounded_memory(tmp_path, name):
    build = next(b for n, b, _ in CASES if n == name)
    path = build(tmp_path)
    # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss into a forked child
    code = ("import re, sys; from saveexport import cli; rc = cli.main(['inspect', sys.argv[1]]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    peak_mib = int(proc.stdout.strip()) / 1024
    assert peak_mib < 64, f"peak RSS {peak_mib:.0f} MiB"


def test_too_many_entries_is_refused(tmp_path):
    path = _tar(tmp_path / "many.tar", [(f"f{i}", b"") for i in range(300)])
    with pytest.raises(ArchiveError, match="more than 100 entries"):
        Archive(path, Limits(max_entries=100))


def test_a_decompression_bomb_layer_is_refused(tmp_path):
    bomb = gzip.compress(layer_bytes([("zeros", b"\0" * (20 << 20))]), compresslevel=9)
    path = _legacy(tmp_path / "s.tar", _good_manifest, layers=[bomb, layer_bytes(BASE)])
    with pytest.raises(ArchiveError, match="decompression bomb"):
        Archive(path, Limits(expansion_floor=1 << 20, max_expansion=10))


def test_extract_refuses_devices_fifos_and_drops_setuid(tmp_path):
    target = tmp_path / "out"
    result = extract(Archive(_special_export(tmp_path)), target)
    refused = {member for member, _ in result.refused}
    assert refused == {"dev/evil", "tmp/fifo"}
    assert not (target / "dev" / "evil").exists() and not (target / "tmp" / "fifo").exists()
    assert not os.stat(target / "bin" / "su").st_mode & stat.S_ISUID


def test_extract_never_writes_outside_the_target(tmp_path):
    build = next(b for n, b, _ in CASES if n == "export-with-climbing-names")
    archive = Archive(build(tmp_path))
    assert set(archive.unsafe_names) == {"../../etc/evil", "/abs/evil"}
    target = tmp_path / "a" / "b" / "out"
    before = {p for p in tmp_path.rglob("*")}
    result = extract(archive, target)
    after = {p for p in tmp_path.rglob("*")}
    assert all(target in p.parents or p == target or p in before or p in target.parents for p in after)
    refused = {member for member, _ in result.refused}
    assert {"../../etc/evil", "ok/link", "ok/hard"} <= refused
    assert not (tmp_path / "etc").exists() and not (tmp_path / "a" / "etc").exists()


def test_extract_never_writes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = _tar(tmp_path / "x.tar", [("etc/", None), ("escape", "->", str(outside)), ("escape/pwned", b"x"),
                                     ("up", "->", "/"), ("up/tmp/pwned", b"y")])
    result = extract(Archive(path), tmp_path / "out")
    assert not (outside / "pwned").exists()
    assert {"escape/pwned", "up/tmp/pwned"} <= {member for member, _ in result.refused}


def test_extract_of_an_image_applies_whiteouts_and_equals_the_flattened_image(tmp_path):
    top = [("bin/",), ("bin/.wh.sh", b""), ("etc/",), ("etc/.wh..wh..opq", b""), ("etc/new", b"n")]
    base = [("bin/",), ("bin/sh", b"s"), ("bin/ls", b"l"), ("etc/",), ("etc/old", b"o"), ("etc/sub/",),
            ("etc/sub/deep", b"d")]
    archive = Archive(legacy_save(tmp_path / "s.tar", [layer_bytes(base), layer_bytes(top)]))
    target = tmp_path / "root"
    result = extract(archive, target)
    written = {str(p.relative_to(target)) for p in target.rglob("*")}
    assert written == set(flatten(archive.images[0]).files) - {""}
    assert written == {"bin", "bin/ls", "etc", "etc/new"}
    assert result.removed_by_whiteouts == 3


def test_extract_into_a_non_empty_directory_is_refused(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine").write_text("keep me")
    with pytest.raises(ArchiveError, match="not empty"):
        extract(Archive(_special_export(tmp_path)), target)
    assert (target / "mine").read_text() == "keep me"


@pytest.mark.parametrize("name", sorted(CODES))
def test_each_unsafe_member_is_named_by_its_code_and_layer(tmp_path, capsys, name):
    build = next(b for n, b, _ in CASES if n == name)
    code, layer = CODES[name]
    assert cli.main(["inspect", "--json", str(build(tmp_path))]) == 1
    violations = json.loads(capsys.readouterr().out)["violations"]
    assert code in {v["code"] for v in violations}, violations
    if layer is not None:
        assert any(v["code"] == code and v["layer"] == layer for v in violations), violations


def test_real_roots_raise_no_alarm_and_standard_devices_are_noted(tmp_path):
    build = next(b for n, b, _ in CASES if n == "layer-standard-devices")
    archive = Archive(build(tmp_path))
    assert verify(archive) == []
    assert any("dev/null (1:3)" in note for note in archive.notes)
