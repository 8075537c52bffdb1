"""host_state.end: how a private engine's process is ended, on processes the tests start."""

from __future__ import annotations

import signal
import subprocess
import sys

from saveexport.host_state import end


def _child(script: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", f"import signal, sys, time\n{script}\nprint('ready', flush=True)\n"
                             "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # its handler is set before it is signalled
    return proc


def test_a_child_that_exits_on_sigterm_is_reaped_not_waited_out():
    """Seen: every private dockerd waited out the whole grace and was then sent SIGKILL, because an exited
    child stays a zombie that signal 0 still finds until it is reaped."""
    proc = _child("")
    assert end(proc.pid, proc, grace_s=30) == "exited"
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace():
    proc = _child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    assert end(proc.pid, proc, grace_s=0.5) == "killed"
    assert proc.returncode == -signal.SIGKILL


def test_a_process_not_ours_is_ended_by_its_pid():
    proc = _child("")
    assert end(proc.pid, None, grace_s=0.5) in ("exited", "killed")  # a zombie of ours to this test: killed
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_already_exited_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert end(proc.pid, proc) == "gone"
