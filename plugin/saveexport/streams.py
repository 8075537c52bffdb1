"""Archive streams to and from the engine on a socket of their own, watched while they run.

docker-py gives no handle on the socket of a request in flight, so a daemon that stops answering
(SIGSTOP, or its containerd stopped) holds the test for the whole request timeout. Here each save,
export and load is one HTTP/1.1 request on a connection this module owns. A watchdog samples the
bytes moving in either direction and the work the engine's own processes do (CPU time and disk I/O of
the process serving the socket and its children, and of its containerd, a child or not). Only when none of them
moves for the stall timeout does it judge the engine hung (a process of it in state T: stopped; else
unresponsive) and shut the socket, so the call fails at once with that line. A load whose upload
has ended while the daemon unpacks in silence is busy, not hung: its processes work.

Endpoints it cannot open itself (ssh://, TLS) keep docker-py's path and the request timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO, Iterator

import docker.errors

from .faults import Fault, peer_pid, process_state, socket_peer_pid
from .own_containerd import SYSTEM_ADDRESS

CHUNK = 1 << 20
SAMPLE_S = 0.5


def refusal(status: int, reason: str, url: str, explanation: str) -> docker.errors.APIError:
    """The daemon's refusal as docker-py raises it (create_api_error_from_http_exception), so outcomes name
    the same exception types whichever path a request took: NotFound, ImageNotFound or APIError."""
    cls = docker.errors.APIError
    if status == 404:
        words = explanation.lower()
        cls = docker.errors.ImageNotFound if any(msg in words for msg in (
            "no such image", "not found: does not exist or no pull access", "repository does not exist",
            "was found but does not match the specified platform")) else docker.errors.NotFound
    response = SimpleNamespace(status_code=status, reason=reason, url=url)
    return cls(f"{status} {reason}: {explanation}", response=response, explanation=explanation)


class Broken(docker.errors.DockerException):
    """The stream's connection broke before its end (faults.diagnose then asks whether the engine died)."""


class Stalled(docker.errors.DockerException):
    """The watchdog shut the stream: nothing moved for the stall timeout."""

    def __init__(self, fault: Fault):
        super().__init__(fault.line)
        self.fault = fault


def supported(engine) -> bool:
    endpoint = engine.endpoint
    if endpoint.startswith("unix://"):
        return True
    return endpoint.startswith(("tcp://", "http://")) and not os.environ.get("DOCKER_TLS_VERIFY")


def _tree(pid: int) -> list[int]:
    """pid and its descendants (a dockerd's containerd and shims), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def containerd_of(pid: int | None) -> int | None:
    """The containerd a dockerd runs on when it did not start it itself, so it is not its child: the one
    named by `--containerd` (every private dockerd's own, own_containerd.py), or the host's at
    /run/containerd when the daemon has no containerd child (dockerd joins that one by default)."""
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    address = next((argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--containerd"), None) or next(
        (word.split("=", 1)[1] for word in argv if word.startswith("--containerd=")), None)
    if address is None:
        if _name(pid) != "dockerd" or any(_name(child) == "containerd" for child in _tree(pid)[1:]) \
                or not os.path.exists(SYSTEM_ADDRESS):
            return None
        address = SYSTEM_ADDRESS
    return peer_pid(address if "://" in address else f"unix://{address}")


def activity(pid: int | None, containerd: int | None = None) -> tuple[int, int, list[tuple[int, str]]]:
    """(CPU clock ticks, bytes read and written on disk, [(pid, state)...]) of the tree of pid, and of
    its containerd's when that is not in it."""
    if pid is None:
        return 0, 0, []
    ticks, io_bytes, states = 0, 0, []
    members = _tree(pid)
    if containerd is not None and containerd not in members:
        members += _tree(containerd)
    for member in members:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
            states.append((member, fields[0]))
            for line in Path(f"/proc/{member}/io").read_text().splitlines():
                if line.startswith(("read_bytes:", "write_bytes:")):
                    io_bytes += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return ticks, io_bytes, states


# What counts as the engine working while nothing moves on the wire: more than an idle daemon's
# housekeeping (containerd wakes up now and then) within one sample.
WORK_TICKS = 3  # 30 ms of CPU in 0.5 s
WORK_IO = 256 * 1024


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Watchdog:
    """Shuts `sock` when neither bytes nor the engine's processes move for `stall_s`."""

    def __init__(self, engine, op: str, sock: socket.socket, stall_s: float):
        self.engine, self.op, self.sock, self.stall_s = engine, op, sock, stall_s
        self.moved = 0  # bytes in either direction, counted by the stream
        self.fault: Fault | None = None
        self.longest_silence = 0.0  # longest time with no bytes moving (a busy engine's silent work)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"saveexport-watchdog-{op}", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(5)

    def _watch(self) -> None:
        last_bytes = self.moved
        containerd = containerd_of(self.engine.pid)
        last_ticks, last_io, _ = activity(self.engine.pid, containerd)
        quiet_since = bytes_since = time.monotonic()
        while not self._done.wait(SAMPLE_S):
            now = time.monotonic()
            ticks, io_bytes, states = activity(self.engine.pid, containerd)
            stopped = any(state in ("T", "t") for _, state in states)
            working = ticks - last_ticks >= WORK_TICKS or io_bytes - last_io >= WORK_IO
            last_ticks, last_io = ticks, io_bytes
            if self.moved != last_bytes:
                last_bytes, bytes_since = self.moved, now
                quiet_since = now
            elif working and not stopped:  # silent on the wire, but the engine works (unpacking, say)
                quiet_since = now
            self.longest_silence = max(self.longest_silence, now - bytes_since)
            if now - quiet_since >= self.stall_s:
                self._trip(states)
                return

    def _trip(self, states: list[tuple[int, str]]) -> None:
        stopped = [(pid, _name(pid)) for pid, state in states if state in ("T", "t")]
        label = self.engine.label_for_faults
        when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        if stopped:
            who = ", ".join(f"{name} {pid}" for pid, name in stopped)
            line = f"no progress for {self.stall_s:.0f} s; the engine {label} is stopped ({who} in state T)"
            kind = "stopped"
        else:
            line = f"no progress for {self.stall_s:.0f} s; the engine {label} is unresponsive"
            kind = "unresponsive"
        self.fault = Fault(label, kind, f"{line} during {self.op}", when, self.op)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Connection(http.client.HTTPConnection):
    def __init__(self, endpoint: str, timeout: float):
        if endpoint.startswith("unix://"):
            super().__init__("localhost", timeout=timeout)
            self._path = endpoint[len("unix://"):]
        else:
            parts = urllib.parse.urlsplit(endpoint.replace("tcp://", "http://", 1))
            super().__init__(parts.hostname, parts.port or 2375, timeout=timeout)
            self._path = None

    def connect(self) -> None:
        if self._path is None:
            return super().connect()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _url(engine, path: str, params: dict[str, Any] | None) -> str:
    query = urllib.parse.urlencode(params or {}, doseq=True)
    return f"/v{engine.api._version}{path}" + (f"?{query}" if query else "")


def _refusal(response: http.client.HTTPResponse, url: str) -> docker.errors.APIError:
    body = response.read(64 * 1024).decode(errors="replace")
    try:
        message = json.loads(body).get("message") or body
    except (ValueError, AttributeError):
        message = body
    return refusal(response.status, response.reason, url, str(message).strip())


class Stream:
    """One request on a connection of its own, watched; use as a context manager."""

    def __init__(self, engine, op: str, stall_s: float, timeout: float):
        self.engine, self.op = engine, op
        self.conn = _Connection(engine.endpoint, timeout)
        self.stall_s = stall_s
        self.watchdog: Watchdog | None = None
        self.response: http.client.HTTPResponse | None = None

    def __enter__(self) -> Stream:
        try:
            self.conn.connect()
        except OSError as exc:
            raise docker.errors.DockerException(f"cannot reach {self.engine.endpoint}: {exc.strerror or exc}") from exc
        # the process serving this very connection: after a restart between tests it is a new one
        self.engine.pid = socket_peer_pid(self.conn.sock) or self.engine.pid
        self.watchdog = Watchdog(self.engine, self.op, self.conn.sock, self.stall_s).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.watchdog is not None:
            self.watchdog.__exit__()
        if self.response is not None:  # its file object holds the socket open otherwise
            self.response.close()
        self.conn.close()

    def _stalled(self, exc: BaseException):
        if self.watchdog is not None and self.watchdog.fault is not None:
            raise Stalled(self.watchdog.fault) from exc
        raise Broken(f"{self.op}: the connection to {self.engine.endpoint} broke ({type(exc).__name__}: "
                     f"{str(exc)[:200]})") from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Iterator[bytes]:
        """GET, then the body in chunks (save, export)."""
        url = _url(self.engine, path, params)
        try:
            self.conn.request("GET", url, headers={"Host": "docker"})
            response = self.response = self.conn.getresponse()
            if response.status != 200:
                raise _refusal(response, url)
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    return
                self.watchdog.moved += len(chunk)
                yield chunk
        except docker.errors.APIError:  # the daemon's refusal (requests' HTTPError is an OSError too)
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._stalled(exc)

    def post_file(self, path: str, params: dict[str, Any] | None, source: BinaryIO,
                  content_type: str = "application/x-tar") -> Iterator[dict[str, Any]]:
        """POST a file as the body (load, import), then the daemon's JSON messages one by one."""
        url = _url(self.engine, path, params)
        size = os.fstat(source.fileno()).st_size
        try:
            self.conn.putrequest("POST", url, skip_host=True, skip_accept_encoding=True)
            for name, value in (("Host", "docker"), ("Content-Type", content_type), ("Content-Length", str(size))):
                self.conn.putheader(name, value)
            self.conn.endheaders()
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                self.conn.sock.sendall(chunk)
                self.watchdog.moved += len(chunk)
            response = self.response = self.conn.getresponse()
            if response.status != 200:
                raise _refusal(response, url)
            decoder = json.JSONDecoder()
            pending = ""
            while True:
                chunk = response.read1(64 * 1024) if hasattr(response, "read1") else response.read(64 * 1024)
                if not chunk:
                    break
                self.watchdog.moved += len(chunk)
                pending += chunk.decode(errors="replace")
                while pending.strip():
                    pending = pending.lstrip()
                    try:
                        item, end = decoder.raw_decode(pending)
                    except ValueError:
                        break
                    pending = pending[end:]
                    yield item
            if pending.strip():
                yield {"stream": pending.strip()}
        except docker.errors.APIError:  # the daemon's refusal (requests' HTTPError is an OSError too)
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._stalled(exc)
