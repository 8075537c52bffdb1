"""`saveexport gc` removes what runs that died left of their private engines on the host (a name's
directories, log and processes; a slot's exec-root, bridge and FORWARD rule), and never what a live run
holds (dead_runs.py). Places of the test's own: SAVEEXPORT_RUN_ROOT and SAVEEXPORT_STATE_ROOT."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables"), reason="needs root and iptables")

HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "w")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(300)
"""


def _rule(net: str, name: str) -> list[str]:
    return ["FORWARD", "-s", net, "-d", net, "-m", "comment", "--comment", f"saveexport {name}", "-j", "ACCEPT"]


def _present(rule: list[str]) -> bool:
    return subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0


def _link(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_gc_removes_what_dead_runs_left_and_nothing_a_live_run_holds(tmp_path):
    run_root, state_root = tmp_path / "run", tmp_path / "state"
    claims = run_root / "claims"
    claims.mkdir(parents=True)
    state_root.mkdir()
    dead_slot, live_slot = 50, 51
    for name in ("docker-dead", "docker-alive"):
        (run_root / name).mkdir()
        (state_root / name / "data").mkdir(parents=True)
        (state_root / f"{name}.log").write_text("log\n")
    (run_root / f"exec-{dead_slot}").mkdir()
    (run_root / f"exec-{live_slot}").mkdir()
    # a process a dead daemon left (its command line names the engine's state), and the live run's holders
    leftover = subprocess.Popen(["sh", "-c", "sleep 300", str(state_root / "docker-dead" / "data")])
    holders = [subprocess.Popen([sys.executable, "-c", HOLD, str(claims / lock)], stdout=subprocess.PIPE, text=True)
               for lock in ("name-docker-alive.lock", f"slot-{live_slot}.lock")]
    rules = [_rule(f"172.{40 + slot}.0.0/16", f"planted-{slot}") for slot in (dead_slot, live_slot)]
    try:
        for holder in holders:
            assert holder.stdout.readline().strip() == "held"
        for slot, rule in zip((dead_slot, live_slot), rules):
            subprocess.run(["ip", "link", "add", f"sebr{slot}", "type", "bridge"], check=True)
            subprocess.run(["iptables", "-w", "-I", *rule], check=True)
        env = dict(os.environ, SAVEEXPORT_RUN_ROOT=str(run_root), SAVEEXPORT_STATE_ROOT=str(state_root))
        proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "gc", "--docker-host",
                               f"unix://{tmp_path}/no-engine.sock"], capture_output=True, text=True, env=env, timeout=120)
        said = proc.stdout.splitlines()
        assert f"saveexport: removed {state_root / 'docker-dead'} (left by a run that died)" in said, proc.stdout
        assert any(f"bridge sebr{dead_slot}" in line for line in said) and any("FORWARD rule" in line for line in said)
        # the dead run's things are gone
        assert not (run_root / "docker-dead").exists() and not (state_root / "docker-dead").exists()
        assert not (state_root / "docker-dead.log").exists() and not (run_root / f"exec-{dead_slot}").exists()
        assert not _link(f"sebr{dead_slot}") and not _present(rules[0])
        for _ in range(50):
            if leftover.poll() is not None:
                break
            time.sleep(0.1)
        assert leftover.poll() is not None, "the dead daemon's process still runs"
        # the live run's are all there
        assert (run_root / "docker-alive").exists() and (state_root / "docker-alive" / "data").exists()
        assert (run_root / f"exec-{live_slot}").exists() and _link(f"sebr{live_slot}") and _present(rules[1])
        assert not any("docker-alive" in line or f"sebr{live_slot}" in line for line in said)
        # the engine part still answers for itself: one line, after the host's sweep
        assert proc.returncode != 0 and proc.stderr.strip() and "Traceback" not in proc.stderr
    finally:
        for process in [leftover, *holders]:
            process.kill()
            process.wait()
            if process.stdout:
                process.stdout.close()
        for slot, rule in zip((dead_slot, live_slot), rules):
            subprocess.run(["ip", "link", "del", f"sebr{slot}"], capture_output=True)
            while _present(rule):
                subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
