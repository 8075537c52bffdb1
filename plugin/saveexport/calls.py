"""Every request the suite makes of an engine, in order, with the test that made it and what it cost.

The evidence records only the operations whose outcomes are evidence (save, export, load, …); the
speed work needs all of them (create, start, inspect, list, remove, tag, the seeding): a benchmark
replays this record as docker CLI commands, so the suite and a plain script do the same work by
construction, and the record says where a test's time goes. On with `--saveexport-record-calls DIR`:
each process (the xdist controller and every worker) appends its own `calls-<worker>.jsonl` there,
a line per request, flushed as it is made, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_RECORD: Recorder | None = None  # set for the whole process by the plugin when recording is on


class Recorder:
    def __init__(self, directory: Path, worker: str = "main"):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"calls-{worker}.jsonl"
        self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._out.write(json.dumps(dict(seq=self._seq, **entry), default=str) + "\n")
            self._out.flush()

    def close(self) -> None:
        with self._lock:
            self._out.close()


def start(directory: Path, worker: str = "main") -> Recorder:
    global _RECORD
    stop()
    _RECORD = Recorder(directory, worker)
    _watch_pytest_docker(True)
    return _RECORD


def stop() -> None:
    global _RECORD
    _watch_pytest_docker(False)
    if _RECORD is not None:
        _RECORD.close()
        _RECORD = None


def recording() -> bool:
    return _RECORD is not None


def _watch_pytest_docker(on: bool) -> None:
    """pytest-docker runs every compose command through its module's `execute` (a shell string): while
    recording, each is recorded too, as the replay must run the same compose commands."""
    try:
        import pytest_docker.plugin as pytest_docker
    except ImportError:
        return
    original = getattr(pytest_docker.execute, "_saveexport_original", None)
    if not on:
        if original is not None:
            pytest_docker.execute = original
        return
    if original is not None:
        return
    wrapped = pytest_docker.execute

    def execute(command, *args, **kwargs):
        with cli(command):
            return wrapped(command, *args, **kwargs)

    execute._saveexport_original = wrapped
    pytest_docker.execute = execute


@contextlib.contextmanager
def cli(command: str | list[str]):
    """A command the suite runs itself that talks to an engine (compose), recorded as the shell command it
    is, timed to its end: compose's own requests never pass through the suite's clients."""
    record = _RECORD
    if record is None:
        yield
        return
    text = command if isinstance(command, str) else shlex.join(command)
    entry = _entry("", "CLI", "", "", None, None, stream=False)
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        record.write(dict(entry, command=text, seconds=round(time.monotonic() - started, 4), error=type(exc).__name__))
        raise
    record.write(dict(entry, command=text, seconds=round(time.monotonic() - started, 4)))


def engine(action: str, facts: dict[str, Any], seconds: float) -> None:
    """A private engine the suite started or stopped ("start", "stop"), with what the replay needs to do
    the same (its processes' argv, configuration files, bridge, rules): the replay starts it too."""
    record = _RECORD
    if record is not None:
        record.write(dict(_entry(facts.get("endpoint", ""), "ENGINE", action, "", None, None, stream=False),
                          engine=facts, seconds=round(seconds, 4)))


def path_of(url: str) -> tuple[str, str]:
    """(API version or "", path) of a docker-py URL: http+docker://localhost/v1.41/containers/create."""
    path = urlsplit(url).path
    parts = path.split("/", 2)
    if len(parts) > 2 and parts[1].startswith("v") and parts[1][1:].replace(".", "").isdigit():
        return parts[1][1:], "/" + parts[2]
    return "", path


SMALL = 1 << 20  # a body up to this size is kept whole (a build's context: a Dockerfile and no files)
_NOTES = threading.local()


@contextlib.contextmanager
def note(**extra: Any):
    """What the next requests of this thread cannot say themselves: the file an archive goes to or comes
    from (the replay writes and reads the same files)."""
    before = getattr(_NOTES, "extra", {})
    _NOTES.extra = {**before, **{key: value for key, value in extra.items() if value is not None}}
    try:
        yield
    finally:
        _NOTES.extra = before


def pause(seconds: float) -> None:
    """A deliberate wait of the suite's (a poll's interval, watching a container settle), recorded so the
    replay waits as long at the same place: a script that skipped them would do less than the suite."""
    time.sleep(seconds)
    record = _RECORD
    if record is not None:
        record.write(dict(_entry("", "SLEEP", "", "", None, None, stream=False), seconds=seconds))


@contextlib.contextmanager
def timed(endpoint: str, method: str, path: str, params: dict[str, Any] | None):
    """A request made on a socket of the suite's own (an archive stream, streams.py), timed to its last byte."""
    record = _RECORD
    if record is None:
        yield
        return
    entry = _entry(endpoint, method, path, "", params, None, stream=True)
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        record.write(dict(entry, seconds=round(time.monotonic() - started, 4), error=type(exc).__name__))
        raise
    record.write(dict(entry, seconds=round(time.monotonic() - started, 4), status=200))


def _entry(endpoint: str, method: str, path: str, version: str, params: Any, data: Any, stream: bool) -> dict:
    return {"at": round(time.time(), 3), "endpoint": endpoint, "method": method, "path": path, "api": version,
            "params": params or None, "body": _body(data),
            "test": (os.environ.get("PYTEST_CURRENT_TEST") or "").rsplit(" ", 1)[0] or None, "stream": stream,
            **getattr(_NOTES, "extra", {})}


def _body(data: Any) -> Any:
    """A JSON body as it was sent (the replay needs create's settings); a small other body whole; a large
    stream or file only as a kind."""
    if data is None:
        return None
    if isinstance(data, (str, bytes)):
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        try:
            return json.loads(text)
        except ValueError:
            pass
    raw = data if isinstance(data, bytes) else data.encode() if isinstance(data, str) else None
    if raw is None and hasattr(data, "getvalue"):
        raw = data.getvalue()
    if raw is None and hasattr(data, "seek") and hasattr(data, "read") and _size(data) <= SMALL:
        position = data.tell()  # a build's context in a temporary file: small, read once more, put back
        raw = data.read(SMALL + 1)
        data.seek(position)
    if isinstance(raw, bytes) and len(raw) <= SMALL:
        return {"base64": base64.b64encode(raw).decode()}
    return {"stream": type(data).__name__, **({"file": str(data.name)} if hasattr(data, "name") else {})}


def _size(data: Any) -> int:
    try:
        return os.fstat(data.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # not a file: an in-memory stream, read up to SMALL
        return 0


def wrap(api, endpoint: str) -> None:
    """Record every request of this docker-py APIClient (a requests.Session) while recording is on."""
    if _RECORD is None or getattr(api, "_saveexport_recorded", False):
        return
    original = api.request

    def request(method: str, url: str, *args: Any, **kwargs: Any):
        record = _RECORD
        if record is None:
            return original(method, url, *args, **kwargs)
        version, path = path_of(url)
        entry = _entry(endpoint, method, path, version, kwargs.get("params"), kwargs.get("data"),
                       bool(kwargs.get("stream")))
        started = time.monotonic()
        try:
            response = original(method, url, *args, **kwargs)
        except BaseException as exc:
            record.write(dict(entry, seconds=round(time.monotonic() - started, 4), error=type(exc).__name__))
            raise
        # a streamed answer (save, export, logs, a load's progress) is timed to its headers; the operation's
        # own outcome in the evidence times its whole body
        made = _made_id(response) if not entry["stream"] else None  # what later requests name it by
        found = _found_ids(method, path, response) if not entry["stream"] else None
        record.write(dict(entry, seconds=round(time.monotonic() - started, 4), status=response.status_code,
                          **({"made": made} if made else {}), **({"found": found} if found else {})))
        return response

    api.request = request
    api._saveexport_recorded = True


def _made_id(response) -> str | None:
    """The id a create, commit or exec answers with (a small JSON body, read once: requests keeps it)."""
    if response.status_code not in (200, 201) or "json" not in response.headers.get("Content-Type", ""):
        return None
    if int(response.headers.get("Content-Length") or 0) > 4096:
        return None
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer.get("Id") if isinstance(answer, dict) and isinstance(answer.get("Id"), str) else None


def _found_ids(method: str, path: str, response) -> list[str] | None:
    """The ids a listing answered with: a test that finds a container by its labels (compose's) and then
    exports it names an id the replay must find the same way."""
    if method != "GET" or path != "/containers/json" or response.status_code != 200:
        return None
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, list) or len(answer) > 50:
        return None
    return [item["Id"] for item in answer if isinstance(item, dict) and isinstance(item.get("Id"), str)] or None


def read(paths: list[Path]) -> list[dict[str, Any]]:
    """Every recorded request of the given files, in the order each process made them."""
    entries = []
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    entries.append(dict(json.loads(line), record=path.name, line=number))
    return entries
