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
