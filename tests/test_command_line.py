"""The command-line entry points fail the way people need: one line, non-zero, within seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_script_with_an_unreachable_remote_engine_says_so_in_one_line():
    env = dict(os.environ, DOCKER_HOST="tcp://127.0.0.1:9")
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "engine"), "up"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "no engine answers at DOCKER_HOST=tcp://127.0.0.1:9" in proc.stderr
    assert time.monotonic() - started < 30


def test_engine_script_rejects_an_unknown_command():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "engine"), "sideways"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "unknown command 'sideways'" in proc.stderr


def test_saveexport_engine_without_an_engine_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "engine", "--docker-host",
                           "unix:///nonexistent/docker.sock"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("saveexport: no container engine answers")
    assert proc.stdout == ""


def test_saveexport_engine_names_the_engine(pytestconfig):
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "engine"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(("docker-", "podman-")) and "API" in proc.stdout


def test_inspect_diff_and_extract_from_the_command_line(tmp_path, capsys):
    import json

    from tarmaker import layer_bytes, legacy_save, rootfs

    from saveexport import cli

    save = legacy_save(tmp_path / "s.tar", [layer_bytes([("bin/",), ("bin/sh", b"#!sh"), ("tmp/",), ("tmp/x", b"xx")]),
                                            layer_bytes([("tmp/",), ("tmp/.wh.x", b"")])], tags=("demo:1",))
    export = rootfs(tmp_path / "e.tar", [("bin/",), ("bin/sh", b"#!sh"), ("tmp/",), (".dockerenv", b""),
                                         ("etc/",), ("etc/hosts", b"127.0.0.1 localhost\n")])
    assert cli.main(["inspect", str(save), "--plot", str(tmp_path / "l.png")]) == 0
    out = capsys.readouterr().out
    assert "demo:1" in out and "verification: ok" in out and (tmp_path / "l.png").stat().st_size > 1000
    assert cli.main(["inspect", "--json", str(save)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "docker-legacy" and summary["images"][0]["shadowed_bytes"] == 2
    assert cli.main(["diff", "--json", str(save), str(export)]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert {d["path"]: d["cause"] for d in diff["differences"]} == {
        ".dockerenv": "container-only", "etc/hosts": "container-only", "etc": "changed-in-container"}
    assert diff["decomposition"]["total"] == diff["decomposition"]["check_save_minus_export"]
    assert cli.main(["diff", str(export), str(save)]) == 2
    assert "not a save archive" in capsys.readouterr().err
    assert cli.main(["extract", str(save), str(tmp_path / "root")]) == 0
    assert sorted(p.name for p in (tmp_path / "root").rglob("*")) == ["bin", "sh", "tmp"]


def test_the_archive_commands_load_no_engine_client():
    """`inspect`/`diff`/`extract` need no engine: they must not pay for docker-py, requests or Markdown."""
    probe = ("import sys, saveexport.cli; heavy = sorted({'docker', 'requests', 'markdown', 'matplotlib', "
             "'importlib.metadata'} & set(sys.modules)); print(heavy)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_version_names_the_package():
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("saveexport ")
