"""What runs that died (SIGKILL, a machine shut down mid-run) left on the host, under names and slots no
live process claims: processes, mounts and directories under a private engine's name; bridges, FORWARD
rules and the exec-root under its slot. A run that starts an engine of the same name or slot removes them
first; `saveexport gc` removes the rest. Each name and slot is swept while its claim is held, so a run
starting meanwhile takes another; a live run's engines are never touched. Only slots this run root has
seen are looked at, and of their bridges only ours (sebrN, sepmN) and those whose every address lies in
the slot's own pool.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from . import daemons
from .host_state import bridges_in, kill_namespaces_holding, kill_using, unmount_below

LOCK = re.compile(r"^(name|slot)-(.+)\.lock$")


def _remove_tree(path: Path) -> bool:
    if not path.exists():
        return False
    kill_using(path)
    unmount_below(path)  # before: copies of the host's namespace then no longer see it (host_state)
    kill_namespaces_holding(path)
    shutil.rmtree(path, ignore_errors=True)
    return True


def _claims(kind: str) -> set[str]:
    if not daemons.CLAIMS.is_dir():
        return set()
    return {m.group(2) for p in daemons.CLAIMS.iterdir() if (m := LOCK.match(p.name)) and m.group(1) == kind}


def _names() -> set[str]:
    """Every name something of a private engine stands under: its claim, run dir, state dir or logs
    (<name>.log, <name>.containerd.log: an engine id may itself end in -containerd)."""
    found = _claims("name")
    for root in (daemons.RUN_ROOT, daemons.STATE_ROOT):
        if root.is_dir():
            for path in root.iterdir():
                if path.is_dir() and path != daemons.CLAIMS and not re.fullmatch(r"exec-\d+", path.name):
                    found.add(path.name)
                elif path.name.endswith(".log"):
                    found.add(path.name.removesuffix(".log").removesuffix(".containerd"))
    return found


def _slots() -> set[int]:
    """Slots this run root has seen (a claim or an exec-root): the bridges and rules of no other slot are
    looked at, so a run under another SAVEEXPORT_RUN_ROOT, or the user's networks, are never touched."""
    seen = {int(v) for v in _claims("slot") if v.isdigit()}
    if daemons.RUN_ROOT.is_dir():
        seen |= {int(p.name[5:]) for p in daemons.RUN_ROOT.iterdir() if re.fullmatch(r"exec-\d+", p.name)}
    return {slot for slot in seen if 1 <= slot <= daemons.MAX_SLOT}


def _sweep_name(name: str) -> list[str]:
    removed = []
    for path in (daemons.RUN_ROOT / name, daemons.STATE_ROOT / name):
        if _remove_tree(path):
            removed.append(str(path))
    for log in (daemons.STATE_ROOT / f"{name}.log", daemons.STATE_ROOT / f"{name}.containerd.log"):
        if log.exists():
            log.unlink()
            removed.append(str(log))
    return removed


def _forward_rules() -> list[str]:
    iptables = shutil.which("iptables")
    if iptables is None:
        return []
    proc = subprocess.run([iptables, "-w", "-S", "FORWARD"], capture_output=True, text=True, check=False)
    return [line for line in proc.stdout.splitlines() if '--comment "saveexport ' in line or
            "--comment saveexport " in line]


def _sweep_slot(slot: int, rules: list[str]) -> list[str]:
    removed = []
    exec_root = daemons.RUN_ROOT / f"exec-{slot}"
    if _remove_tree(exec_root):
        removed.append(str(exec_root))
    nets = (f"172.{40 + slot}.0.0/16", f"10.{200 + slot}.0.0/16")
    links = {f"sebr{slot}", f"sepm{slot}"} | set(bridges_in(nets[1], prefixes=("br-", "podman"), only=True))
    for link in sorted(links):
        if subprocess.run(["ip", "link", "del", link], capture_output=True, check=False).returncode == 0:
            removed.append(f"bridge {link}")
    iptables = shutil.which("iptables")
    for rule in rules:
        words = shlex.split(rule)
        if iptables and words[:2] == ["-A", "FORWARD"] and any(f"-s {net}" in rule for net in nets):
            if subprocess.run([iptables, "-w", "-D", *words[1:]], capture_output=True, check=False).returncode == 0:
                removed.append(f"FORWARD rule {' '.join(words[2:])}")
    return removed


def sweep() -> list[str]:
    """Remove what dead runs left; returns one entry per thing removed (empty when nothing was left)."""
    removed: list[str] = []
    for name in sorted(_names()):
        handle = daemons.try_claim("name", name)
        if handle is None:
            continue  # a live run's
        try:
            removed += _sweep_name(name)
        finally:
            handle.close()
    rules = _forward_rules()
    for slot in sorted(_slots()):
        handle = daemons.try_claim("slot", str(slot))
        if handle is None:
            continue
        try:
            removed += _sweep_slot(slot, rules)
        finally:
            handle.close()
    return removed
