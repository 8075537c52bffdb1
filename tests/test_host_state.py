"""host_state.end: how a private engine's process is ended, on processes the tests start."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from saveexport.host_state import end


@pytest.fixture
def child():
    """Start a Python child that has run `script` (a signal handler); ended and its pipe closed afterwards."""
    started = []

    def start(script: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", f"import signal, sys, time\n{script}\n"
                                 "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"  # its handler is set before it is signalled
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def test_a_child_that_exits_on_sigterm_is_reaped_not_waited_out(child):
    """Seen: every private dockerd waited out the whole grace and was then sent SIGKILL, because an exited
    child stays a zombie that signal 0 still finds until it is reaped."""
    proc = child("")
    assert end(proc.pid, proc, grace_s=30) == "exited"
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(child):
    proc = child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    assert end(proc.pid, proc, grace_s=0.5) == "killed"
    assert proc.returncode == -signal.SIGKILL


def test_a_process_not_ours_is_ended_by_its_pid(child):
    proc = child("")
    assert end(proc.pid, None, grace_s=0.5) in ("exited", "killed")  # a zombie of ours to this test: killed
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_already_exited_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert end(proc.pid, proc) == "gone"
