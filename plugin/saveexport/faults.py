"""When the engine itself fails, not the operation: it died, its socket went away, it is stopped, or
the disk under the run's archives is full.

A failed call is judged after the fact: the engine's own process (found through the socket's peer
credentials, or the private daemon the suite started), its socket file, and a short unversioned ping.
A fault found once is kept for that engine, so its remaining tests fail at once with the same line
instead of each waiting for a timeout; the other engines of the run carry on.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import socket
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PING_S = 5
LOG_LINES = 20


@dataclass
class Fault:
    """What happened to an engine, when, and during what; `line` is what a person reads."""

    engine: str
    kind: str  # died | gone | stopped | unresponsive; restarted | recovered (the run carries on)
    line: str
    when: str = ""
    during: str = ""
    log_tail: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return dict(asdict(self), log_tail=list(self.log_tail))

    @property
    def lasting(self) -> bool:
        """Whether the engine's remaining tests should fail with it (not when it came back)."""
        return self.kind not in ("restarted", "recovered")


def peer_pid(endpoint: str) -> int | None:
    """The pid of the process serving a unix socket (SO_PEERCRED), or None (tcp, ssh, not Linux)."""
    if not endpoint.startswith("unix://") or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PING_S)
            sock.connect(endpoint[len("unix://"):])
            return socket_peer_pid(sock)
    except OSError:
        return None


def socket_peer_pid(sock: socket.socket) -> int | None:
    """The pid at the other end of a connected unix socket, or None for any other socket."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)[0] or None


def process_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat (R, S, D, T stopped, Z zombie), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _ping(endpoint: str) -> str | None:
    """None when /_ping answers within PING_S; else a few words why not."""
    if not endpoint.startswith("unix://"):
        return None  # not judged here: the failed call's own error says it
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PING_S)
            sock.connect(endpoint[len("unix://"):])
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            answer = sock.recv(64)
    except socket.timeout:
        return f"no answer to /_ping within {PING_S} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if answer.startswith(b"HTTP/1.") else "the socket answers, but not HTTP"


def log_tail(path: Path | None, lines: int = LOG_LINES) -> tuple[str, ...]:
    """The last lines of a daemon's log, read from the end (logs grow large)."""
    if path is None:
        return ()
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode(errors="replace")
    except OSError:
        return ()
    return tuple(text.strip().splitlines()[-lines:])


def diagnose(engine, during: str = "") -> Fault | None:
    """Is the engine itself at fault? None when it still answers (the failure was the operation's own)."""
    endpoint = engine.endpoint
    label = engine.label_for_faults
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    tail = log_tail(getattr(engine, "log_path", None))
    if endpoint.startswith("unix://") and not os.path.exists(endpoint[len("unix://"):]):
        line = (f"the engine {label} is gone: its socket {endpoint[len('unix://'):]} no longer exists"
                + _pid_words(engine.pid))
        return Fault(label, "gone", line, now, during, tail)
    pid = engine.pid
    if pid is not None:
        state = process_state(pid)
        if state is None or state == "Z":
            successor = serving_again(engine)
            if successor is not None:
                engine.pid = successor
                return Fault(label, "restarted", f"the engine {label} restarted (its process {pid} is gone; "
                             f"{successor} serves its socket now); the run carries on with it", now, during, tail)
            return Fault(label, "died", f"the engine {label} died (its process {pid} is gone)", now, during, tail)
        if state in ("T", "t"):
            return Fault(label, "stopped", f"the engine {label} is stopped (its process {pid} is in state T)",
                         now, during, tail)
    why = _ping(endpoint)
    if why and pid is not None:  # a process being killed closes its sockets before it is gone: let it settle
        for _ in range(20):
            state = process_state(pid)
            if state is None or state == "Z":
                return Fault(label, "died", f"the engine {label} died (its process {pid} is gone)", now, during,
                             log_tail(getattr(engine, "log_path", None)))
            time.sleep(0.1)
    if why:
        return Fault(label, "unresponsive", f"the engine {label} does not answer at {endpoint} ({why})", now,
                     during, tail)
    return None


def serving_again(engine) -> int | None:
    """The pid of a live process other than the one we knew that answers on the engine's socket (the
    engine restarted), or None. Quick when nothing serves it: a missing socket or a refused connection."""
    endpoint = engine.endpoint
    if not endpoint.startswith("unix://") or not os.path.exists(endpoint[len("unix://"):]):
        return None
    pid = peer_pid(endpoint)
    if pid is None or pid == engine.pid or process_state(pid) in (None, "Z", "T", "t"):
        return None
    return pid if _ping(endpoint) is None else None


def recovered(engine) -> Fault | None:
    """For an engine that died or went away earlier in the run: is it back (restarted by someone)?"""
    fault = engine.fault
    if fault is None or fault.kind not in ("died", "gone"):
        return None  # a stopped or unresponsive engine is not asked again: each ask would wait
    successor = serving_again(engine)
    if successor is None:
        return None
    engine.pid, engine.fault = successor, None
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Fault(fault.engine, "recovered", f"the engine {fault.engine} answers again ({successor} serves its "
                 f"socket) after it {fault.kind} ({fault.line}); the run carries on with it", now, fault.during)


def _pid_words(pid: int | None) -> str:
    if pid is None:
        return ""
    state = process_state(pid)
    return f" (its process {pid} is gone)" if state in (None, "Z") else f" (its process {pid} still runs)"


# -- the disk under the archives ------------------------------------------------------------------------

def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def space_line(directory: Path, needed: int, free: int) -> str:
    return (f"not enough space in {directory} for the archive: it needs about {needed / 1e6:,.0f} MB and "
            f"{free / 1e6:,.0f} MB are free; free some, or point --saveexport-archive-dir at a larger disk")


def filled_line(directory: Path, written: int, needed: int | None) -> str:
    needs = f"about {needed / 1e6:,.0f} MB" if needed else f"more than {written / 1e6:,.0f} MB"
    return (f"the disk under {directory} filled after {written / 1e6:,.0f} MB of the archive, which needs {needs} "
            f"({free_bytes(directory) / 1e6:,.0f} MB free now that the partial file is removed); free some, or "
            f"point --saveexport-archive-dir at a larger disk")


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
