"""benchmarks/suite_vs_script.py's accounting: requests named by the operation they belong to, and each
test's junit time split into its engine calls (from the record) and the rest; on inputs the test writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import suite_vs_script as bench  # noqa: E402


@pytest.mark.parametrize("method, path, params, kind", [
    ("GET", "/images/get", {"names": ["a"]}, "save"),
    ("POST", "/images/load", None, "load"),
    ("POST", "/images/create", {"fromSrc": "-"}, "import"),
    ("POST", "/images/create", {"fromImage": "x"}, "pull"),
    ("POST", "/containers/create", None, "create"),
    ("POST", "/containers/abc/start", None, "start"),
    ("POST", "/containers/abc/wait", None, "wait"),
    ("GET", "/containers/abc/export", None, "export"),
    ("GET", "/containers/abc/archive", {"path": "/"}, "cp"),
    ("HEAD", "/containers/abc/archive", {"path": "/"}, "cp"),
    ("POST", "/containers/abc/exec", None, "exec"),
    ("POST", "/exec/123/start", None, "exec"),
    ("GET", "/containers/json", None, "list"),
    ("GET", "/images/abc/json", None, "inspect"),
    ("DELETE", "/images/abc", None, "remove"),
    ("POST", "/images/abc/tag", None, "tag"),
    ("GET", "/_ping", None, "contact"),
    ("POST", "/volumes/prune", None, "POST other"),
])
def test_each_request_is_named_by_its_operation(method, path, params, kind):
    assert bench.kind_of(method, path, params or {}) == kind


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="experiments.test_a" name="test_one[docker-1]" time="10.0"/>
<testcase classname="experiments.test_a" name="test_two[docker-1]" time="2.5"/>
</testsuite></testsuites>"""


def test_a_tests_time_is_split_into_engine_calls_by_kind_waits_and_the_rest_beside_the_scripts(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    one, two = "experiments/test_a.py::test_one[docker-1]", "experiments/test_a.py::test_two[docker-1]"
    main, second = "unix:///var/run/docker.sock", "unix:///run/saveexport/empty/docker.sock"
    entries = [{"method": "GET", "path": "/images/get", "params": {}, "seconds": 4.0, "test": one, "endpoint": main},
               {"method": "POST", "path": "/images/load", "params": {}, "seconds": 3.0, "test": one, "endpoint": main},
               {"method": "SLEEP", "path": "", "seconds": 0.5, "test": one, "endpoint": ""},
               {"method": "POST", "path": "/images/load", "params": {}, "seconds": 1.0, "test": one, "endpoint": main},
               {"method": "GET", "path": "/_ping", "params": {}, "seconds": 0.5, "test": None, "endpoint": main},
               {"method": "POST", "path": "/containers/create", "params": {}, "seconds": 1.0, "test": two,
                "endpoint": second}]
    scripts = [{"per_test_s": {one: 8.0, two: 1.0}}, {"per_test_s": {one: 9.0, two: 2.0}}, {"per_test_s": {one: 7.5}}]
    found = bench.breakdown(entries, [bench.junit_times(junit)], scripts)
    rows = {row["test"]: row for row in found["per_test"]}
    assert rows[one] == {"test": one, "seconds": 10.0, "script_s": 8.0, "ratio": 1.25, "engine_calls_s": 8.0,
                         "waits_s": 0.5, "rest_s": 1.5, "whole_in_script": True,
                         "by_kind_s": {"load": 4.0, "save": 4.0, "deliberate wait": 0.5}}
    assert rows[two]["engine_calls_s"] == 1.0 and rows[two]["rest_s"] == 1.5
    assert rows[two]["whole_in_script"] is False  # its calls went to a second engine the script does not have
    assert rows["(before the first test)"]["engine_calls_s"] == 0.5  # the session's first contact
    assert found["per_test"][0]["test"] == one  # longest first
    assert found["engine_calls_by_kind_s"] == {"save": 4.0, "load": 4.0, "create": 1.0, "contact": 0.5,
                                               "deliberate wait": 0.5}
    assert found["whole_in_script"]["tests"] == 2 and found["whole_in_script"]["suite_s"] == 10.0


def test_the_scripts_time_marks_give_each_test_its_part(tmp_path):
    script, times = tmp_path / "replay.sh", tmp_path / "times"
    script.write_text('printf "%s %s\\n" 10.0 one >> "$SAVEEXPORT_REPLAY_TIMES"\n'
                      'printf "%s %s\\n" 12.5 two >> "$SAVEEXPORT_REPLAY_TIMES"\n'
                      'printf "%s %s\\n" 13.0 one >> "$SAVEEXPORT_REPLAY_TIMES"\n'
                      'printf "%s %s\\n" 14.0 "(end)" >> "$SAVEEXPORT_REPLAY_TIMES"\n')
    ran = bench.run_script(script, times)
    assert ran["exit_status"] == 0 and ran["per_test_s"] == {"one": 3.5, "two": 0.5}
