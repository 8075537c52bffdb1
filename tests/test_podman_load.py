"""`podman load`, the move matrix's second way into Podman, against the real podman CLI on a store of the
test's own (never the machine's): what it loaded, a refusal and a load that never ends are outcomes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from saveexport import moves
from saveexport.baseline import behaviour


@pytest.fixture
def podman_cli(tmp_path) -> tuple[list[str], dict[str, str]]:
    podman = shutil.which("podman")
    if podman is None:
        message = "podman not installed (scripts/engine tools installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    run_root = tempfile.mkdtemp(prefix="se-podman-load-")  # podman takes a runroot of 50 characters at most
    argv = [podman, "--root", str(tmp_path / "root"), "--runroot", run_root, "--storage-driver", "vfs"]
    staging = tmp_path / "tmp"  # its image copies (else /var/tmp, where a podman CLI leaves an empty podman… file)
    staging.mkdir()
    yield argv, dict(os.environ, TMPDIR=str(staging))
    subprocess.run([*argv, "rmi", "--all", "--force"], capture_output=True, timeout=120, check=False)
    subprocess.run([*argv, "system", "reset", "--force"], capture_output=True, timeout=120, check=False)
    shutil.rmtree(run_root, ignore_errors=True)


def _podman(cli, *args: str) -> str:
    argv, env = cli
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]
    return proc.stdout


def test_podman_load_names_what_it_loaded(podman_cli, tmp_path):
    _podman(podman_cli, "import", str(moves.tools_root(tmp_path / "tools.tar", ("/bin/sh",))), "example/tools:1")
    _podman(podman_cli, "save", "--format", "docker-archive", "-o", str(tmp_path / "saved.tar"), "example/tools:1")
    image_id = _podman(podman_cli, "images", "--no-trunc", "--format", "{{.ID}}", "example/tools:1").strip()
    _podman(podman_cli, "rmi", "example/tools:1")

    loaded = moves.podman_load(podman_cli, tmp_path / "saved.tar")

    assert loaded.ok, loaded.message
    assert [ref.rsplit("/", 1)[-1] for ref in loaded.result["loaded_refs"]] == ["tools:1"]
    assert _podman(podman_cli, "images", "--no-trunc", "--format", "{{.ID}}", "example/tools:1").strip() == image_id
    assert loaded.bytes == (tmp_path / "saved.tar").stat().st_size


def test_a_file_podman_cannot_load_is_a_refusal_with_its_words(podman_cli, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not an archive\n" * 100)

    refused = moves.podman_load(podman_cli, junk)

    assert refused.failed
    assert refused.error_type.startswith("exit status ")
    assert refused.message and refused.message != "?"
    assert refused.result["loaded_refs"] == []


def test_a_load_that_never_ends_is_a_timeout_in_bounded_time(podman_cli, tmp_path):
    fifo = tmp_path / "never.tar"
    os.mkfifo(fifo)
    held = threading.Event()

    def hold_open() -> None:  # a writer that never writes: podman waits for bytes that never come
        with open(fifo, "wb"):
            held.wait(60)

    writer = threading.Thread(target=hold_open, daemon=True)
    writer.start()
    try:
        timed_out = moves.podman_load(podman_cli, fifo, timeout_s=3)
    finally:
        held.set()

    assert timed_out.failed
    assert timed_out.error_type == "TimeoutExpired"
    assert timed_out.duration_s < 30


def test_the_cli_route_is_the_same_engine_under_a_key_of_its_own():
    archive = {"kind": "docker-save", "writer": "docker-28.5.2-overlay2"}
    document = {"observations": [
        {"topic": "move", "data": {"target": "podman-5", "archive": archive, "outcome": "loads and runs"}},
        {"topic": "move", "data": {"target": "podman-5 (podman load)", "target_engine": "podman-5",
                                   "route": "podman load", "archive": archive, "outcome": "refused"}},
    ]}

    facts = behaviour(document)

    assert list(facts) == ["podman-5"]
    assert facts["podman-5"] == {"move docker-save by docker-28.5.2-overlay2": "loads and runs",
                                 "move docker-save by docker-28.5.2-overlay2 via podman load": "refused"}
