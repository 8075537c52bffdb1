"""A long phase says when it starts and ends on the terminal, under capture, with and without xdist."""

from __future__ import annotations

import pytest

from saveexport import progress

INNER = """
import time
import pytest
from saveexport import progress

@pytest.fixture(scope="session")
def slow_thing():
    with progress.phase("making the planted thing"):
        time.sleep(0.2)
    return 1

def test_uses_it(slow_thing):
    print("captured output of the test")  # stays captured
    assert slow_thing == 1

def test_a_phase_that_fails_says_so():
    with pytest.raises(RuntimeError):
        with progress.phase("a planted phase that breaks"):
            raise RuntimeError("planted")
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_progress_lines_reach_the_terminal_while_a_fixture_works(pytester, workers):
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *(["-n", workers] if workers else []))
    result.assert_outcomes(passed=2)
    seen = result.stdout.lines + result.stderr.lines
    started = [line for line in seen if line.endswith("saveexport: making the planted thing ...")]
    ended = [line for line in seen if "saveexport: making the planted thing: done in 0 s" in line]
    assert len(started) == 1 and len(ended) == 1, "\n".join(seen)
    assert any("saveexport: a planted phase that breaks: stopped after 0 s (RuntimeError)" in line for line in seen)
    assert not any("captured output of the test" in line for line in seen)  # capture still holds the test's own
    if workers:  # a worker's lines name it
        assert started[0].startswith("[gw") and ended[0].startswith("[gw"), started + ended
        assert started[0] in result.stderr.lines


def test_without_a_sink_nothing_is_written(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_sink", None)
    with progress.phase("unseen"):
        pass
    assert capsys.readouterr() == ("", "")
