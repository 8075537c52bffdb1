"""The storage census in a real run: objects planted in a private engine's storage are counted, measured
and attributed to the test after which they appeared; what the engine's API names is never counted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from saveexport.storage_watch import summary


def test_objects_planted_in_a_private_engines_storage_are_counted_and_attributed(pytester, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test starts a private engine: run it as root", pytrace=False)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    pytester.makepyfile(test_planted="""
        import io, os, tarfile

        LAYER = "ab" * 32
        CACHE_ID = "cd" * 32

        def test_1_plants(container_engine, run_scope):
            root = container_engine.storage_root
            layer = root / "image" / "overlay2" / "layerdb" / "sha256" / LAYER
            layer.mkdir(parents=True)
            (layer / "cache-id").write_text(CACHE_ID)
            driver = root / "overlay2" / CACHE_ID / "diff"
            driver.mkdir(parents=True)
            (driver / "payload").write_bytes(b"x" * 5000)
            os.link(driver / "payload", driver / "same-payload")  # a hard link: its bytes count once

        def test_2_works_cleanly(container_engine, run_scope, engine_ops, tmp_path):
            tar_path = tmp_path / "root.tar"
            with tarfile.open(tar_path, "w") as tar:
                info = tarfile.TarInfo("hello"); info.size = 3; tar.addfile(info, io.BytesIO(b"hi\\n"))
            made = engine_ops.import_(tar_path, run_scope.ref("tiny", "1"))
            assert made.ok  # named while the run lasts; removed by its cleanup with everything it holds
    """)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--saveexport-engine=dockerd:{dockerd}",
                                           f"--saveexport-report-dir={report}", timeout=300)
    result.assert_outcomes(passed=2)
    [found] = json.loads((report / "saveexport-evidence.json").read_text())["storage"]
    assert "copy_tmp" not in found  # a dockerd: its unfinished imports stay below its data-root
    assert found["measured"] and not found["shared"] and found["store"] == "overlay2", found
    kept = {(k["kind"], k["name"]): k["after"] for k in found["kept"]}
    assert kept == {("layer", "ab" * 32): "test_planted.py::test_1_plants[docker-20.10.24-overlay2]",
                    ("driver-dir", "cd" * 32): "test_planted.py::test_1_plants[docker-20.10.24-overlay2]"}, kept
    assert found["kept_bytes"] == {"driver-dir": 5000, "layer": 64}, found["kept_bytes"]  # cache-id: 64 bytes
    assert summary(found["kept"]) == "driver-dir ×1, layer ×1 after test_planted.py::test_1_plants"
    text = (report / "saveexport-report.md").read_text()
    assert "## What the engines' storage kept" in text and "after test_planted.py::test_1_plants" in text


def test_summary_names_kinds_and_tests_without_ids():
    kept = [{"kind": "layer", "name": "a", "after": "t.py::test_x[docker-1]"},
            {"kind": "layer", "name": "b", "after": "t.py::test_x[docker-1]"},
            {"kind": "content-blob", "name": "c", "after": "t.py::test_y[docker-1] (or the run's cleanup after it)"}]
    assert summary(kept) == "layer ×2 after t.py::test_x; content-blob ×1 after t.py::test_y"
    assert summary([]) == "nothing"


def test_a_podman_the_suite_did_not_start_is_counted_where_its_import_left_the_body(pytester, tmp_path):
    """A Podman service the user runs (here: one this test starts, storage outside the suite's): its compat
    API's import leaves the body in its image-copy directory (podman#28531), outside its store. The census
    counts it there, by its full path, and nothing else of that directory (the machine's)."""
    podman = shutil.which("podman")
    if podman is None or os.geteuid() != 0:
        pytest.fail("this test starts a Podman service: run it as root with podman installed", pytrace=False)
    copies = tmp_path / "copies"  # the service's TMPDIR: where containers.conf's /var/tmp would be
    copies.mkdir()
    (copies / "someone-elses.tmp").write_bytes(b"x" * 100)
    socket = tmp_path / "podman.sock"
    runroot = Path(tempfile.mkdtemp(prefix="saveexport-test-", dir="/run"))  # Podman wants at most 50 characters
    argv = [podman, "--root", str(tmp_path / "store"), "--runroot", str(runroot), "--storage-driver",
            "vfs", "--tmpdir", str(tmp_path / "libpod-tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "system", "service", "--time=0", f"unix://{socket}"]
    env = dict(os.environ, TMPDIR=str(copies))
    with open(tmp_path / "service.log", "wb") as log:
        service = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and service.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket.exists(), (tmp_path / "service.log").read_text()[-2000:]
        pytester.makepyfile(test_user_podman="""
            import io, tarfile

            def test_import(run_scope, engine_ops, tmp_path):
                tar_path = tmp_path / "root.tar"
                with tarfile.open(tar_path, "w") as tar:
                    info = tarfile.TarInfo("hello"); info.size = 3; tar.addfile(info, io.BytesIO(b"hi\\n"))
                assert engine_ops.import_(tar_path, run_scope.ref("tiny", "1")).ok
        """)
        report = tmp_path / "report"
        result = pytester.runpytest_subprocess("-p", "no:randomly", f"--saveexport-engine=unix://{socket}",
                                               f"--saveexport-report-dir={report}", timeout=300)
        result.assert_outcomes(passed=1)
        [found] = json.loads((report / "saveexport-evidence.json").read_text())["storage"]
        assert found["measured"] and found["shared"] and found["copy_tmp"] == str(copies), found
        kept = [k["name"] for k in found["kept"] if k["kind"] == "tmp"]
        assert len(kept) == 1 and kept[0].startswith(f"{copies}/api_load.tar"), found["kept"]
        assert found["kept_bytes"]["tmp"] >= 10240, found["kept_bytes"]  # the whole archive it was sent
        assert sorted(p.name for p in copies.iterdir())[-1] == "someone-elses.tmp"  # counted, never removed
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait()
        shutil.rmtree(runroot, ignore_errors=True)
