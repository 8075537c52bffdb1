"""Where progress lines go: the terminal reporter's terminal, or, on an xdist worker, the controller's.

Under xdist a worker's stdout is xdist's channel and its fixtures have no way to the controller's
terminal: each worker appends its lines, as JSON, to a file of its own in a directory the controller
hands it (plugin.py, pytest_configure_node); a thread of the controller tails them onto its terminal,
with the worker's name. A worker handed no directory (an older controller) writes to its stderr.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

MIN_ROOM = 30  # columns an update needs beside what a terminal's line already holds (xdist's dots)


def terminal_sink(config):
    """This process's sink: the terminal on the controller (or without xdist); on an xdist worker, the
    file the controller tails, else (an older controller) the inherited stderr."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return Terminal(config)
    worker = workerinput["workerid"]
    directory = workerinput.get("saveexport_progress_dir")
    if directory:
        return Channel(Path(directory) / f"{worker}.jsonl", worker, bool(workerinput.get("saveexport_progress_tty")),
                       fallback=Stderr(config, f"[{worker}] "))
    return Stderr(config, f"[{worker}] ")


def _suspended(config):
    capman = config.pluginmanager.getplugin("capturemanager")
    return capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()


class _Lines:
    """A sink of whole lines only: an update is a line of its own."""

    tty = False

    def status(self, text: str) -> None:
        self.line(text)

    def hold(self):
        return contextlib.nullcontext()

    def for_workers(self) -> dict:
        return {}

    def finish(self) -> None:
        pass

    close = finish


class Stderr(_Lines):
    def __init__(self, config, prefix: str = ""):
        self.config, self.prefix = config, prefix

    def line(self, text: str) -> None:
        with _suspended(self.config):
            sys.stderr.write(self.prefix + text + "\n")
            sys.stderr.flush()


class Channel(_Lines):
    """An xdist worker's lines, as JSON records appended to its file in the controller's directory."""

    def __init__(self, path: Path, worker: str, tty: bool, fallback: _Lines):
        self.path, self.worker, self.tty, self.fallback = path, worker, tty, fallback
        self._file = None
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        self._put("line", text)

    def status(self, text: str) -> None:
        self._put("status", text)

    def _put(self, kind: str, text: str) -> None:
        with self._lock:
            try:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(json.dumps({"worker": self.worker, kind: text}) + "\n")
                self._file.flush()
                return
            except OSError:  # the controller's directory is gone (it died): say it here instead
                pass
        if kind == "line":
            self.fallback.line(text)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Terminal:
    """The terminal reporter's terminal. Whole lines through it; on a tty, updates as one line rewritten
    in place, which steps aside before any other line (and before pytest writes a report: plugin.py
    holds the lock around those hooks). One lock orders this process's writes and the workers'."""

    def __init__(self, config):
        self.config = config
        self.lock = threading.RLock()
        self.shown_at: int | None = None  # while an update shows: the column it starts at
        self.directory: Path | None = None
        self.tail: Tail | None = None

    def _reporter(self):
        return self.config.pluginmanager.getplugin("terminalreporter")

    @property
    def tty(self) -> bool:
        reporter = self._reporter()
        return reporter is not None and bool(getattr(reporter, "isatty", False)) and \
            self.config.get_terminal_writer().hasmarkup

    def line(self, text: str, *, suspend: bool = True) -> None:
        with self.lock, (_suspended(self.config) if suspend else contextlib.nullcontext()):
            reporter = self._reporter()
            if reporter is None:  # before the reporter exists (a build fetched in pytest_configure), or -p no:terminal
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
                return
            self._step_aside()
            reporter.ensure_newline()
            if self.config.get_terminal_writer().width_of_current_line != 0:  # xdist's dots, say
                reporter.write("\n")
            reporter.write_line(text)

    def status(self, text: str, *, suspend: bool = True) -> None:
        if not self.tty:
            self.line(text, suspend=suspend)
            return
        with self.lock, (_suspended(self.config) if suspend else contextlib.nullcontext()):
            reporter, writer = self._reporter(), self.config.get_terminal_writer()
            column = self.shown_at
            if column is None:
                reporter.ensure_newline()  # a test's line without xdist: pytest starts it again after
                column = writer.width_of_current_line
                if column < 0 or writer.fullwidth - column < MIN_ROOM:
                    reporter.write("\n")
                    column = 0
            # beside xdist's dots, if any: pytest still counts the line as theirs and goes on after them
            text = (" " if column else "") + fit(text, writer.fullwidth - column - 1)
            writer.write_raw(f"\r{_forward(column)}{text}\x1b[K", flush=True)
            self.shown_at = column

    def _step_aside(self) -> None:
        if self.shown_at is not None:
            self.config.get_terminal_writer().write_raw(f"\r{_forward(self.shown_at)}\x1b[K", flush=True)
            self.shown_at = None

    @contextlib.contextmanager
    def hold(self):
        """pytest writes a report: first what the workers said before it (the tail may lag behind the
        report), then the update steps aside meanwhile (the next one shows again)."""
        with self.lock:
            if self.tail is not None:
                self.tail.drain()
            self._step_aside()
            yield

    def for_workers(self) -> dict:
        """What pytest_configure_node hands every worker; the directory is made, and tailed, once."""
        with self.lock:
            if self.directory is None:
                self.directory = Path(tempfile.mkdtemp(prefix="saveexport-progress-"))
                self.tail = Tail(self.directory, self._deliver, lock=self.lock)
                self.tail.start()
        return {"saveexport_progress_dir": str(self.directory), "saveexport_progress_tty": self.tty}

    def _deliver(self, record: dict) -> None:
        # the tailing thread: it leaves capture alone (not thread-safe); under xdist the controller captures nothing
        prefix = f"[{record.get('worker', '?')}] "
        if "status" in record:
            self.status(prefix + str(record["status"]), suspend=False)
        elif "line" in record:
            self.line(prefix + str(record["line"]), suspend=False)

    def finish(self) -> None:
        """At the session's end, before the summary: the workers' last lines, and no update left showing."""
        if self.tail is not None:
            self.tail.stop()
        with self.lock:
            self._step_aside()

    def close(self) -> None:
        self.finish()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def fit(text: str, room: int) -> str:
    """`text` in `room` columns, shortened in the middle: its start says what the phase is, its end where
    it is (the update), and that end is what an in-place line is for."""
    if len(text) <= room:
        return text
    head = min(30, max(room // 3, 0))
    return text[:head] + "…" + text[len(text) - max(room - head - 1, 0):] if room > 1 else text[:room]


def _forward(columns: int) -> str:
    return f"\x1b[{columns}C" if columns else ""


class Tail(threading.Thread):
    """Follows the workers' files in `directory`: each complete JSON line, once, to `deliver`, under `lock`
    (the terminal's own: one lock, so the tail and the writers never wait on each other in turn)."""

    def __init__(self, directory: Path, deliver: Callable[[dict], None], every: float = 0.2, lock=None):
        super().__init__(name="saveexport-progress", daemon=True)
        self.directory, self.deliver, self.every = directory, deliver, every
        self._offsets: dict[str, int] = {}
        self._lock = lock if lock is not None else threading.RLock()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.every):
            self.drain()

    def drain(self) -> None:
        with self._lock:
            for path in sorted(self.directory.glob("*.jsonl")):
                offset = self._offsets.get(path.name, 0)
                try:
                    with open(path, "rb") as source:
                        source.seek(offset)
                        data = source.read()
                except OSError:
                    continue
                complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next round
                self._offsets[path.name] = offset + len(complete)
                for raw in complete.splitlines():
                    try:
                        record = json.loads(raw)
                        self.deliver(record if isinstance(record, dict) else {})
                    except (ValueError, OSError):  # a broken record, or the terminal gone (a closed pipe)
                        continue

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)
        self.drain()
