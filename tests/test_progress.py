"""A long phase says what it does on the terminal, under capture, with and without xdist: start and end as
complete lines, updates in between rate-limited (in place on a terminal, plain lines in a log)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from saveexport import progress, progress_sinks, standin
from saveexport.standin import step_of

INNER = """
import json
import time
import pytest
from saveexport import progress

@pytest.fixture(scope="session")
def slow_thing():
    with progress.phase("making the planted thing"):
        time.sleep(0.2)
    with progress.phase("counting the planted steps") as phase:
        for _ in range(50):
            phase.update("step 1 of 3", step=True)  # the same text again and again: shown once
        phase.update("4.0 MB streamed")  # within a second of the last: held back
        time.sleep(1.1)
        phase.update("step 2 of 3", step=True)
        time.sleep(1.1)
        progress.update("step 3 of 3", step=True)  # the innermost phase, for code it calls
    return 1

def test_uses_it(slow_thing, request):
    print("captured output of the test")  # stays captured
    workerinput = getattr(request.config, "workerinput", {})
    (request.config.rootpath / "handed.json").write_text(json.dumps(workerinput.get("saveexport_progress_dir")))
    assert slow_thing == 1

def test_a_phase_that_fails_says_so():
    with pytest.raises(RuntimeError):
        with progress.phase("a planted phase that breaks"):
            raise RuntimeError("planted")
"""

COUNTING = "saveexport: counting the planted steps"


def _n(workers):
    return ["-n", workers] if workers else []


@pytest.mark.parametrize("workers", [None, "2"])
def test_progress_lines_reach_the_terminal_while_a_fixture_works(pytester, monkeypatch, workers):
    pytester.makepyfile(test_inner=INNER)
    temp = pytester.mkdir("temp")
    monkeypatch.setenv("TMPDIR", str(temp))  # where the controller makes the workers' directory
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", *_n(workers))
    result.assert_outcomes(passed=2)
    out, seen = result.stdout.lines, result.stdout.lines + result.stderr.lines
    started = [line for line in seen if line.endswith("saveexport: making the planted thing ...")]
    ended = [line for line in seen if "saveexport: making the planted thing: done in 0 s" in line]
    assert len(started) == 1 and len(ended) == 1, "\n".join(seen)
    assert any("saveexport: a planted phase that breaks: stopped after 0 s (RuntimeError)" in line for line in seen)
    assert not any("captured output of the test" in line for line in seen)  # capture still holds the test's own
    # in a log (not a terminal): each new step once, in order; a mere change within 10 s is held back
    counting = [line.split(COUNTING, 1)[1] for line in out if COUNTING in line]
    assert counting[:4] == [" ...", ": step 1 of 3", ": step 2 of 3", ": step 3 of 3"], "\n".join(seen)
    assert re.fullmatch(r": done in 2 s", counting[4]) and len(counting) == 5, counting
    assert started[0] in out and ended[0] in out  # through the controller's terminal, never a worker's stderr
    assert not any("saveexport:" in line for line in result.stderr.lines), result.stderr.lines
    handed = json.loads((pytester.path / "handed.json").read_text())
    done = next(n for n, line in enumerate(out) if line.endswith(f"{COUNTING}: done in 2 s"))
    passed = next(n for n, line in enumerate(out) if re.search(r"test_uses_it PASSED|PASSED .*::test_uses_it", line))
    assert done < passed, out  # a worker's lines come before the report of the test it wrote them in
    if workers:  # a worker's lines name it; its directory was the controller's, and is gone
        assert all(re.match(r"\[gw\d\] saveexport: ", line) for line in out if "saveexport: " in line), out
        assert Path(handed).parent == temp and not Path(handed).exists(), handed
    else:
        assert handed is None and not started[0].startswith("[gw")
    assert list(temp.iterdir()) == []


def _on_a_terminal(pytester, *args: str) -> str:
    """pytest's output when its stdout is a terminal (a pseudo-terminal, 150 columns)."""
    main, other = pty.openpty()
    attrs = termios.tcgetattr(other)
    attrs[1] &= ~termios.ONLCR  # "\n" as written, not "\r\n"
    termios.tcsetattr(other, termios.TCSANOW, attrs)
    env = {key: value for key, value in os.environ.items() if key not in ("PY_COLORS", "NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm", COLUMNS="150")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             f"--basetemp={pytester.path / 'basetemp'}", *args], cwd=pytester.path,
                            stdin=subprocess.DEVNULL, stdout=other, stderr=other, env=env)
    os.close(other)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1)[0]:
                try:
                    data = os.read(main, 65536)
                except OSError:  # every writer is gone
                    break
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(main)
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=30)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("workers", [None, "2"])
def test_on_a_terminal_updates_rewrite_one_line_in_place(pytester, workers):
    pytester.makepyfile(test_inner=INNER)
    output = _on_a_terminal(pytester, *_n(workers))
    worker = r"\[gw\d\] " if workers else ""
    for step in ("step 1 of 3", "step 2 of 3", "step 3 of 3"):  # each written over the line it shares
        assert re.search(rf"\r(\x1b\[\d+C)? ?{worker}{COUNTING}: {step}\x1b\[K", output), repr(output[-3000:])
    assert "4.0 MB streamed" not in output  # on a terminal too, a second between two updates
    # what stays on the screen: the text after each line's last carriage return
    rows = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", row.rsplit("\r", 1)[-1]) for row in output.split("\n")]
    assert not [row for row in rows if "of 3" in row], rows  # the updates stepped aside
    assert len([row for row in rows if re.fullmatch(rf"{worker}{COUNTING}: done in 2 s", row)]) == 1, rows
    assert len([row for row in rows if re.fullmatch(rf"{worker}{COUNTING} \.\.\.", row)]) == 1, rows
    assert any(re.search(r"2 passed", row) for row in rows), rows


class _Sink:
    def __init__(self, tty: bool):
        self.tty, self.lines, self.statuses = tty, [], []

    def line(self, text):
        self.lines.append(text)

    def status(self, text):
        self.statuses.append(text)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("tty", [True, False])
def test_updates_are_rate_limited(tty):
    clock = _Clock()
    limiter = progress.Limiter(tty, clock)
    assert limiter.admit("a")  # the first at once
    assert not limiter.admit("a")  # the same text never again
    clock.now += 0.5
    assert not limiter.admit("b", step=True)  # within a second: not even a new step
    clock.now += 0.6
    assert not limiter.admit("a")  # a second on, but unchanged
    assert limiter.admit("b") is tty  # a mere change: a terminal shows it, a log waits PLAIN_EVERY
    assert limiter.admit("c", step=True) is (not tty)  # a log shows a new step after a second
    clock.now += progress.PLAIN_EVERY
    assert limiter.admit("d")


def test_a_phase_updates_through_its_limiter_and_the_innermost_one_takes_module_updates(monkeypatch):
    clock, sink = _Clock(), _Sink(tty=False)
    monkeypatch.setattr(progress, "_sink", sink)
    with progress.phase("outer", clock=clock):
        with progress.phase("inner", clock=clock) as inner:
            progress.update("x", step=True)
            inner.update("y", step=True)  # within the second
        clock.now += 1
        progress.update("z", step=True)
        chunks = list(inner.stream([b"a" * 500_000, b"b" * 1_500_000]))  # a closed phase may still count
    progress.update("after")  # no phase open: nothing
    assert sink.statuses[:2] == ["saveexport: inner: x", "saveexport: outer: z"]
    assert sink.statuses[2:] == ["saveexport: inner: all 2.0 MB streamed, waiting for the receiver"], sink.statuses
    assert b"".join(chunks) == b"a" * 500_000 + b"b" * 1_500_000
    assert sink.lines == ["saveexport: outer ...", "saveexport: inner ...", "saveexport: inner: done in 0 s",
                          "saveexport: outer: done in 1 s"]


def test_the_tail_delivers_each_complete_record_once(tmp_path):
    got = []
    tail = progress_sinks.Tail(tmp_path, got.append)
    (tmp_path / "gw0.jsonl").write_text('{"worker": "gw0", "line": "one"}\nnot json\n{"worker": "gw0", "li')
    (tmp_path / "gw1.jsonl").write_text('{"worker": "gw1", "status": "two"}\n')
    tail.drain()
    assert got == [{"worker": "gw0", "line": "one"}, {"worker": "gw1", "status": "two"}]
    with open(tmp_path / "gw0.jsonl", "a") as file:
        file.write('ne": "three"}\n')
    tail.drain()
    tail.drain()
    assert got[2:] == [{"worker": "gw0", "line": "three"}]


def test_a_workers_lines_go_to_its_file_else_to_the_fallback(tmp_path):
    fallback = _Sink(tty=False)
    channel = progress_sinks.Channel(tmp_path / "gw3.jsonl", "gw3", tty=True, fallback=fallback)
    channel.line("begun")
    channel.status("half way")
    channel.close()
    records = [json.loads(line) for line in (tmp_path / "gw3.jsonl").read_text().splitlines()]
    assert records == [{"worker": "gw3", "line": "begun"}, {"worker": "gw3", "status": "half way"}]
    gone = progress_sinks.Channel(tmp_path / "gone" / "gw3.jsonl", "gw3", tty=False, fallback=fallback)
    gone.line("still said")
    gone.status("an update is dropped")
    assert fallback.lines == ["still said"] and fallback.statuses == []


def test_a_command_in_a_phase_shows_its_latest_stage(tmp_path, monkeypatch):
    sink = _Sink(tty=True)
    monkeypatch.setattr(progress, "_sink", sink)
    script = "import time\nprint('I: one', flush=True)\ntime.sleep(1.5)\nprint('I: two', flush=True)\ntime.sleep(1)"
    with progress.phase("making a root"), open(tmp_path / "log", "wb") as log:
        status = progress.run_logged([sys.executable, "-c", script], log, pick=progress.mmdebstrap_stage, every=0.1)
    assert status == 0
    assert sink.statuses == ["saveexport: making a root: I: one", "saveexport: making a root: I: two"]
    assert (tmp_path / "log").read_text().split() == ["I:", "one", "I:", "two"]


@pytest.mark.parametrize("stream, step", [
    ("Step 3/12 : RUN apt-get update\n", "step 3 of 12: RUN apt-get update"),
    ("STEP 2/5: COPY entrypoint.sh /\n", "step 2 of 5: COPY entrypoint.sh /"),
    (" ---> Running in 1234\nStep 4/12 : ENV A=b\n ---> 42\n", "step 4 of 12: ENV A=b"),
    ("Step 1 : VOLUME /data\n", "step 1: VOLUME /data"),
    ("Get:1 http://mirror.example/debian bullseye InRelease\n", None),
])
def test_a_builds_step_is_read_from_its_stream(stream, step):
    assert step_of(stream) == step


def test_a_builds_steps_are_its_phases_updates(tmp_path, monkeypatch):
    clock, sink = _Clock(), _Sink(tty=False)
    monkeypatch.setattr(progress, "_sink", sink)
    stream = [(0.0, {"stream": "Step 1/2 : FROM base\n"}), (0.4, {"stream": "Step 2/2 : RUN make\n"}),
              (0.5, {"stream": "compiling\n"}), (0.7, {"stream": "linking\n"}), (0.1, {"aux": {"ID": "sha256:1"}})]

    def build(**kwargs):
        for seconds, chunk in stream:
            clock.now += seconds
            yield chunk

    engine = SimpleNamespace(api=SimpleNamespace(build=build))
    with progress.phase("building", clock=clock):
        assert standin.build(engine, str(tmp_path), "t:1", {}, "r", tmp_path / "cache") == "sha256:1"
    # step 2 came 0.4 s after step 1: held back, then shown with the first chunk a second after step 1
    assert sink.statuses == ["saveexport: building: step 1 of 2: FROM base",
                             "saveexport: building: step 2 of 2: RUN make"]
    assert sink.lines[-1] == "saveexport: building: done in 2 s"
    assert "compiling" in (tmp_path / "cache" / "build-t_1.log").read_text()


def test_without_a_sink_nothing_is_written(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_sink", None)
    with progress.phase("unseen") as phase:
        phase.update("nor this")
        progress.update("nor that")
    assert capsys.readouterr() == ("", "")


def test_an_update_too_wide_for_the_terminal_keeps_where_the_phase_is():
    line = "saveexport: streaming saveexport-cache-postgres:9.6 from unix:///var/run/docker.sock into " \
           "unix:///run/saveexport/docker-26.1.5-overlay2/docker.sock: 212.0 MB streamed (41.3 MB/s)"
    shown = progress_sinks.fit(line, 79)
    assert len(shown) == 79 and shown.startswith("saveexport: streaming") and shown.endswith("212.0 MB streamed (41.3 MB/s)")
    assert progress_sinks.fit("short", 79) == "short" and len(progress_sinks.fit(line, 20)) == 20
