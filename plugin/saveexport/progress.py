"""A line when a long phase starts and one when it ends (fetching an engine build, making a Podman root
or a stand-in image, streaming the subject into a private engine), so a first run that works for minutes
does not look hung. Only work that is really done says so: a cached build is silent.

The lines reach the terminal under pytest's capture and under xdist. A worker cannot write to the
controller's terminal reporter (its stdout is xdist's channel), but its stderr is the terminal's: a
worker's lines go there, prefixed with its name; without xdist they go through the terminal reporter.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

PREFIX = "saveexport: "
_sink: Callable[[str], None] | None = None


def install(sink: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Where the lines go (the plugin installs one per session; None: nowhere, e.g. outside pytest);
    returns the sink it replaces, for the session to put back at its end."""
    global _sink
    before, _sink = _sink, sink
    return before


def say(line: str) -> None:
    if _sink is not None:
        _sink(PREFIX + line)


@contextlib.contextmanager
def phase(what: str) -> Iterator[None]:
    say(f"{what} ...")
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        say(f"{what}: stopped after {time.monotonic() - started:.0f} s ({type(exc).__name__})")
        raise
    say(f"{what}: done in {time.monotonic() - started:.0f} s")


def terminal_sink(config) -> Callable[[str], None]:
    """The sink for this pytest process: the terminal reporter on the controller (or without xdist), the
    inherited stderr, with capture suspended, on an xdist worker."""
    capman = config.pluginmanager.getplugin("capturemanager")
    workerinput = getattr(config, "workerinput", None)

    def suspended():
        return capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()

    if workerinput is not None:
        prefix = f"[{workerinput['workerid']}] "

        def to_stderr(line: str) -> None:
            with suspended():
                sys.stderr.write(prefix + line + "\n")
                sys.stderr.flush()
        return to_stderr

    def to_terminal(line: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        with suspended():
            if reporter is None:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
                return
            reporter.ensure_newline()
            reporter.write_line(line)
    return to_terminal
