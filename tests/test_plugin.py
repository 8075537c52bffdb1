"""The plugin seen from outside, through pytester: options, errors, evidence, report, xdist."""

from __future__ import annotations

import json
import time

import pytest

from saveexport import cli
from saveexport.settings import OPTIONS

RECORDING_TESTS = """
import pytest

@pytest.mark.claim("C9")
def test_one(claim_evidence):
    claim_evidence.observe("probe", value=1, nested={"a": [1, 2]})
    claim_evidence.verdict("C9", "confirmed", "first aspect")

@pytest.mark.claim("C9")
def test_two(claim_evidence):
    claim_evidence.verdict("C9", "confirmed", "second aspect")

def test_three(claim_evidence):
    claim_evidence.verdict("C10", "refuted", "it ran")

def test_four(claim_evidence):
    claim_evidence.verdict("C11", "confirmed", "recorded, then the test failed")
    assert False
"""


def test_help_lists_every_option_with_its_prefix_and_ini_twin(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*saveexport: docker save/load vs export/import*"])
    for name in OPTIONS:
        result.stdout.fnmatch_lines([f"*--saveexport-{name.replace('_', '-')}*"])
        result.stdout.fnmatch_lines([f"*saveexport_{name}*"])
    assert result.ret == 0


def test_a_bad_option_value_is_one_usage_line(pytester):
    result = pytester.runpytest("--saveexport-image-source=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'nope'*"])
    assert "Traceback" not in result.stderr.str()


def test_a_bad_ini_value_names_its_source(pytester):
    pytester.makeini("[pytest]\nsaveexport_timeout = soon\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini saveexport_timeout='soon' is not a whole number of seconds*"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("cli_value, env_value, ini_value, expected", [
    (None, None, None, "postgres:9.6"),
    (None, None, "from-ini:1", "from-ini:1"),
    (None, "from-env:1", "from-ini:1", "from-env:1"),
    ("from-cli:1", "from-env:1", "from-ini:1", "from-cli:1"),
])
def test_option_precedence_is_cli_then_env_then_ini(pytester, monkeypatch, cli_value, env_value, ini_value, expected):
    if ini_value:
        pytester.makeini(f"[pytest]\nsaveexport_image = {ini_value}\n")
    if env_value:
        monkeypatch.setenv("SAVEEXPORT_IMAGE", env_value)
    else:
        monkeypatch.delenv("SAVEEXPORT_IMAGE", raising=False)
    pytester.makepyfile(f"""
        def test_settings(saveexport_settings):
            assert saveexport_settings.image == {expected!r}
    """)
    args = [f"--saveexport-image={cli_value}"] if cli_value else []
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_an_unreachable_engine_is_one_clear_line_within_seconds(pytester):
    pytester.makepyfile("""
        def test_needs_engine(container_engine):
            pass
    """)
    started = time.monotonic()
    result = pytester.runpytest("--saveexport-docker-host=unix:///nonexistent/docker.sock")
    elapsed = time.monotonic() - started
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no container engine answers at unix:///nonexistent/docker.sock*scripts/engine up*"])
    assert "Traceback" not in result.stdout.str()
    assert elapsed < 30


def test_evidence_becomes_a_versioned_json_and_markdown_report(pytester):
    pytester.makepyfile(RECORDING_TESTS)
    report_dir = pytester.path / "out"
    result = pytester.runpytest(f"--saveexport-report-dir={report_dir}")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*saveexport verdicts*", "*C9  confirmed*", "*C10  refuted*", "*C11  no verdict*",
                                 f"saveexport report: {report_dir}/saveexport-report.md*"])
    document = json.loads((report_dir / "saveexport-evidence.json").read_text())
    assert document["schema"] == "saveexport/evidence" and document["schema_version"] == 1
    assert {"python", "pytest", "docker_sdk"} <= set(document["machine"])
    c9 = document["claims"]["C9"]["per_engine"]["engine"]
    assert c9["verdict"] == "confirmed" and len(c9["aspects"]) == 2
    assert document["claims"]["C11"]["per_engine"]["engine"]["verdict"] == "no verdict"
    assert document["observations"][0]["data"] == {"value": 1, "nested": {"a": [1, 2]}}
    markdown = (report_dir / "saveexport-report.md").read_text()
    grid = next(b for b in markdown.split("\n\n") if b.startswith("|"))  # the first table: claims × engines
    assert "| [C9](#c9-load-of-an-export-fails) load of an export fails" in grid and "✓" in grid and "✗" in grid
    assert "**confirmed**" in markdown and "**refuted**" in markdown  # the evidence, row by row
    page = (report_dir / "saveexport-report.html").read_text()
    assert page.startswith("<!doctype html>") and '<table class="grid" id="grid">' in page
    assert '<td class="cell yes" title="engine: confirmed — first aspect; second aspect"><a href="#c9-engine">✓' in page


def test_the_report_re_renders_from_json_alone(pytester, capsys):
    pytester.makepyfile(RECORDING_TESTS)
    report_dir = pytester.path / "out"
    pytester.runpytest(f"--saveexport-report-dir={report_dir}")
    rendered = pytester.path / "again.md"
    assert cli.main(["report", str(report_dir / "saveexport-evidence.json"), "-o", str(rendered)]) == 0
    assert rendered.read_text() == (report_dir / "saveexport-report.md").read_text()
    page = pytester.path / "again.html"
    assert cli.main(["report", str(report_dir / "saveexport-evidence.json"), "-o", str(page)]) == 0
    assert page.read_text() == (report_dir / "saveexport-report.html").read_text()


def test_the_html_page_carries_its_pictures_inside(tmp_path):
    from saveexport import report
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    figure.savefig(tmp_path / "p.png")
    plt.close(figure)
    text = "# A report\n\n| a | b |\n|---|---|\n| `x<y` | 2 |\n\n![layers](p.png)\n\n![gone](missing.png)\n"
    page = report.render_html(text, tmp_path)
    assert "<title>A report</title>" in page and "<td><code>x&lt;y</code></td>" in page
    assert 'src="data:image/png;base64,iVBOR' in page and 'src="p.png"' not in page
    assert 'src="missing.png"' in page  # a picture that is not there stays a link, never an error


def test_report_of_a_file_that_is_not_evidence_is_one_line(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text("[1, 2]")
    assert cli.main(["report", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a saveexport evidence file" in err


def test_no_evidence_no_report(pytester):
    pytester.makepyfile("def test_plain(): pass")
    report_dir = pytester.path / "out"
    result = pytester.runpytest(f"--saveexport-report-dir={report_dir}")
    result.assert_outcomes(passed=1)
    assert not report_dir.exists()
    assert "saveexport verdicts" not in result.stdout.str()


def test_with_xdist_only_the_controller_writes_and_sees_every_worker(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(RECORDING_TESTS)
    report_dir = pytester.path / "out"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", f"--saveexport-report-dir={report_dir}")
    result.assert_outcomes(passed=3, failed=1)
    assert result.stdout.str().count("saveexport report:") == 1
    document = json.loads((report_dir / "saveexport-evidence.json").read_text())
    assert len([r for r in document["observations"]]) == 1
    assert len(document["claims"]["C9"]["per_engine"]["engine"]["aspects"]) == 2
    assert sorted(t.split("::")[1] for t in document["tests"]) == ["test_four", "test_one", "test_three", "test_two"]


def test_a_baseline_fails_the_run_when_behaviour_changed(pytester):
    pytester.makepyfile(test_before=RECORDING_TESTS,
                        test_after=RECORDING_TESTS.replace('verdict("C10", "refuted"', 'verdict("C10", "confirmed"'))
    first = pytester.path / "first"
    pytester.runpytest("test_before.py", f"--saveexport-report-dir={first}", "-k", "not four")
    same = pytester.runpytest("test_before.py", f"--saveexport-report-dir={pytester.path / 'same'}", "-k",
                              "not four", f"--saveexport-baseline={first / 'saveexport-evidence.json'}")
    assert same.ret == 0
    same.stdout.fnmatch_lines(["*every engine behaved as in the baseline*"])
    changed = pytester.runpytest("test_after.py", f"--saveexport-report-dir={pytester.path / 'changed'}", "-k",
                                 "not four", f"--saveexport-baseline={first / 'saveexport-evidence.json'}")
    assert changed.ret == pytest.ExitCode.TESTS_FAILED
    changed.stdout.fnmatch_lines(["*CHANGED  engine: C10 verdict: was 'refuted', now 'confirmed'*"])


@pytest.mark.parametrize("words, same_as", [
    ("open /var/lib/docker/tmp/docker-import-123456789/bin/json: no such file",
     "open /srv/x/tmp/docker-import-987654321/bin/json: no such file"),
    ("oci: initializing source oci:/var/tmp/api_load.tar1242487690:: open index.json",
     "oci: initializing source oci:/var/tmp/api_load.tar2194338778:: open index.json"),
])
def test_the_daemons_words_are_compared_without_what_always_varies(words, same_as):
    from saveexport.report import _normalise_words

    assert _normalise_words(words) == _normalise_words(same_as)
    assert _normalise_words("No command specified") != _normalise_words("no command specified")


def test_the_report_says_what_an_image_the_engine_kept_is():
    from saveexport.report import _leaks

    out: list[str] = []
    _leaks({"leaks": [{"engine": "docker-28.5.2-containerd", "suite_leftovers": {}, "cleanup_problems": [],
                       "engine_kept_images": {"sha256:19b904a7f6ac00": [], "sha256:1bd001b9c00b00": []},
                       "engine_kept_details": {"sha256:19b904a7f6ac00": {
                           "created": "2026-11-28T01:02:03.456Z", "bytes": 10, "layers": 13,
                           "made_by": "/bin/sh -c #(nop)  LABEL x=1", "labels": {"io.saveexport.run": "r1"}},
                           "sha256:1bd001b9c00b00": {"error": "No such image"}}}]}, out.append)
    row = next(line for line in out if "docker-28.5.2-containerd" in line)
    assert "19b904a7f6ac (untagged) (13 layers, made by `/bin/sh -c #(nop) LABEL x=1`, created 2026-11-28T01:02:03" in row
    assert "labels io.saveexport.run=r1" in row and "1bd001b9c00b (untagged) (No such image)" in row
