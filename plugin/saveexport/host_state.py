"""What a private engine leaves on the host, and how it is taken away again: processes that name its
directories, mounts below them, other mount namespaces holding them, its bridges and FORWARD rules.
Every function here works on one engine's own paths, subnets and names, never on anything else."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .errors import EngineUnavailable


def accept_within(name: str, nets: tuple[str, ...], add: bool, ns=lambda argv: argv) -> None:
    """One commented FORWARD rule per subnet of a private engine, accepting its traffic among itself while
    it runs (the machine's engine sets FORWARD to DROP); removed again at stop."""
    iptables = shutil.which("iptables")
    if iptables is None:
        return  # no packet filter: nothing drops the traffic
    comment = ["-m", "comment", "--comment", f"saveexport {name}"]
    for rule in (["FORWARD", "-s", net, "-d", net, *comment, "-j", "ACCEPT"] for net in nets):
        present = subprocess.run(ns([iptables, "-w", "-C", *rule]), capture_output=True, check=False).returncode == 0
        if add and not present:
            proc = subprocess.run(ns([iptables, "-w", "-I", *rule]), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise EngineUnavailable(f"could not let {name}'s containers reach each other "
                                        f"(iptables -I {' '.join(rule)}): {proc.stderr.strip()}")
        while not add and present:
            subprocess.run(ns([iptables, "-w", "-D", *rule]), capture_output=True, check=False)
            present = subprocess.run(ns([iptables, "-w", "-C", *rule]), capture_output=True,
                                     check=False).returncode == 0


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else argv


def bridges_in(pool: str, netns: str | None = None, prefixes: tuple[str, ...] = ("br-",),
                only: bool = False) -> list[str]:
    """Bridges (br-*, or other `prefixes`: podman for Podman's) with an address in `pool` (a /16 of ours);
    `only`: with no address outside it."""
    prefix = pool.split(".0.0/")[0] + "."
    proc = subprocess.run(in_netns(netns, ["ip", "-j", "-4", "addr", "show"]), capture_output=True, text=True,
                          check=False)
    try:
        links = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    inside = [[str(a.get("local", "")).startswith(prefix) for a in link.get("addr_info") or []] for link in links]
    return [link["ifname"] for link, ours in zip(links, inside) if str(link.get("ifname", "")).startswith(prefixes)
            and ours and (all(ours) if only else any(ours))]


def kill_using(path: Path) -> None:
    """SIGKILL every process whose command line names `path` (a dead daemon's containerd and shims)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if names(path, (proc / "cmdline").read_bytes()):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def names(path: Path, text: bytes) -> bool:
    """Whether `text` (a command line, a mount table) names `path` or something below it; never a sibling
    that merely starts alike (the store of `podman` is not the store of `podman-5.4.2`)."""
    return re.search(re.escape(str(path).encode()) + rb"(?=[/\x00\s:,=]|$)", text) is not None


def unmount_below(path: Path) -> None:
    """Overlay and shm mounts a killed daemon left behind, deepest first, so the tree can be removed."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    prefix = str(path) + "/"
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def last_words(lines: list[str]) -> str:
    """The line of a log that says why: the last error, else the last line (a root's podman ends with
    unshare's own words about its child)."""
    errors = [line for line in lines if re.search(r"\b(error|Error|ERRO|fatal|FATA)\b", line)]
    last = (errors or lines or ["?"])[-1]
    said = re.search(r'\bmsg="((?:[^"\\]|\\.)*)"', last)  # logrus: time=… level=fatal msg="…"
    return (said.group(1) if said else last)[:300]


STOP_GRACE_S = 10  # how long a daemon has to exit after SIGTERM before SIGKILL (the replayed script's too)


def end(pid: int, process: subprocess.Popen | None = None, grace_s: float = STOP_GRACE_S) -> str:
    """SIGTERM, then SIGKILL once the grace is over: "exited", "killed" or "gone" (not running).

    A child of ours is reaped through its Popen: until then it is a zombie that signal 0 still finds,
    so asking the pid alone waited out the whole grace after every dockerd had long exited."""
    own = process is not None and process.pid == pid
    try:
        if own and process.poll() is not None:
            return "gone"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if own:
                try:
                    process.wait(timeout=0.1)
                    return "exited"
                except subprocess.TimeoutExpired:
                    continue
            os.kill(pid, 0)  # not ours: ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "exited"
    if own:
        process.wait(timeout=10)
    return "killed"


def signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def kill_namespaces_holding(path: Path) -> None:
    """SIGKILL every process of another mount namespace whose mounts name `path`: a root's service and what
    it runs, containers included (their root's overlay names its layers in the store). When the last one
    ends, its namespace and every mount in it go with it. Processes of this namespace are never touched.
    Call it once this namespace's own mounts below `path` are undone (unmount_below): a namespace copied
    from the host's (a systemd service's PrivateTmp) sees them by propagation until then, and would be
    taken for one of ours."""
    try:
        own = os.readlink("/proc/self/ns/mnt")
    except OSError:
        return
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "ns" / "mnt") == own:
                continue
            if names(path, (proc / "mountinfo").read_bytes()):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
