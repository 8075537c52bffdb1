"""Lines about long phases (fetching an engine build, making a Podman root or a stand-in image, streaming
the subject into a private engine, starting an engine), so a first run that works for minutes does not
look hung. Only work really done says so: a cached build is silent.

A phase's start and end are complete lines everywhere. In between, updates say where it is (a build's
step, bytes streamed): on a terminal one line rewritten in place, in a log (CI) a plain line now and
then, so the log does not flood (Limiter).

Where the lines go (the terminal, or under xdist the controller's terminal by a side channel) is
progress_sinks.py's.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

PREFIX = "saveexport: "
TTY_EVERY = 1.0  # s: at most one update a second on a terminal, and a new step in a log
PLAIN_EVERY = 10.0  # s: any other change in a log
_sink = None
_open = threading.local()  # .phases: this thread's open phases, innermost last


def install(sink):
    """Where the lines go (the plugin installs one per session; None: nowhere, e.g. outside pytest);
    returns the sink it replaces, for the session to put back at its end."""
    global _sink
    before, _sink = _sink, sink
    return before


def say(line: str) -> None:
    if _sink is not None:
        _sink.line(PREFIX + line)


class Limiter:
    """Which updates to show: a changed text only, at most one per TTY_EVERY s; in a log, a change
    that is no new step at most one per PLAIN_EVERY s. The first one shows at once."""

    def __init__(self, tty: bool, clock: Callable[[], float] = time.monotonic):
        self.tty, self.clock = tty, clock
        self.shown: str | None = None
        self.at: float | None = None

    def admit(self, text: str, step: bool = False) -> bool:
        if text == self.shown:
            return False
        now = self.clock()
        if self.at is not None and now - self.at < (TTY_EVERY if self.tty or step else PLAIN_EVERY):
            return False
        self.shown, self.at = text, now
        return True


class Phase:
    """An open phase; `update` (called as often as convenient) says where it is, as the limiter lets it."""

    def __init__(self, what: str, sink, clock: Callable[[], float]):
        self.what, self.sink, self.clock = what, sink, clock
        self.limiter = Limiter(bool(getattr(sink, "tty", False)), clock)
        self.started = clock()

    def say(self, line: str) -> None:
        if self.sink is not None:
            self.sink.line(PREFIX + line)

    def update(self, text: str, *, step: bool = False) -> None:
        """`step`: the text names a new step (a build's), worth a line in a log too."""
        if self.sink is not None and self.limiter.admit(text, step):
            self.sink.status(f"{PREFIX}{self.what}: {text}")

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The chunks, passed through; the bytes so far are the update."""
        total = 0
        for chunk in chunks:
            total += len(chunk)
            seconds = max(self.clock() - self.started, 0.001)
            self.update(f"{total / 1e6:.1f} MB streamed ({total / 1e6 / seconds:.1f} MB/s)")
            yield chunk
        self.update(f"all {total / 1e6:.1f} MB streamed, waiting for the receiver", step=True)


@contextlib.contextmanager
def phase(what: str, *, clock: Callable[[], float] = time.monotonic) -> Iterator[Phase]:
    current = Phase(what, _sink, clock)
    current.say(f"{what} ...")
    phases = _open.phases = getattr(_open, "phases", [])
    phases.append(current)
    try:
        yield current
    except BaseException as exc:
        current.say(f"{what}: stopped after {clock() - current.started:.0f} s ({type(exc).__name__})")
        raise
    finally:
        phases.remove(current)
    current.say(f"{what}: done in {clock() - current.started:.0f} s")


def update(text: str, *, step: bool = False) -> None:
    """Update the innermost phase open in this thread (none: nothing), for code a phase calls."""
    phases = getattr(_open, "phases", None)
    if phases:
        phases[-1].update(text, step=step)


def mmdebstrap_stage(line: str) -> bool:
    """The lines mmdebstrap names its stages with ("I: downloading packages with apt...")."""
    return line.startswith("I: ")


def run_logged(argv: list[str], log, *, pick: Callable[[str], bool], env=None, every: float = 0.5) -> int:
    """`argv`'s exit status; its output goes to the open file `log`, and the latest line of it that `pick`
    keeps is the innermost phase's update meanwhile. Interrupted, the process is killed."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            try:
                return proc.wait(timeout=every)
            except subprocess.TimeoutExpired:
                latest = _latest(Path(log.name), pick)
                if latest:
                    update(latest)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _latest(path: Path, pick: Callable[[str], bool]) -> str | None:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, 2) - 8192))
            tail = log.read().decode(errors="replace")
    except OSError:
        return None
    return next((line.strip()[:100] for line in reversed(tail.splitlines()) if pick(line)), None)
