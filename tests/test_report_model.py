"""The report for a reader, rendered from the committed five-engine evidence (no engine): the grid first,
what differs in sentences naming engines, the move grid, no repeats, no temporary paths, narrow tables,
pictures inlined; and the job summary, written by the plugin's controller only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from saveexport import evidence, reporting
from saveexport.reporting.model import build, short_label

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "reports" / "matrix" / "saveexport-evidence.json"
SHORTS = ["20.10.24", "26.1.5", "28.5.2 api≥1.44", "28.5.2 c8d", "28.5.2 c8d 2.1.9", "podman 4.3.1", "podman 5.4.2",
          "podman 5.8.6"]  # the committed matrix's engines, in the grid's order


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    reporting.write(evidence.load(MATRIX), directory)
    return directory


def _visible_width(table: list[str]) -> int:
    """What a reader sees of a pipe table: the widest cell of each column, links shown by their text."""
    rows = [[re.sub(r"\]\(#[^)]*\)", "]", c).strip() for c in line.strip("|").split("|")]
            for n, line in enumerate(table) if n != 1]  # not the |:---| line
    return sum(max(len(r[i]) for r in rows if i < len(r)) + 3 for i in range(len(rows[0])))


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_the_first_table_is_the_grid_of_claims_and_cross_loads_by_engine(rendered):
    markdown = (rendered / "saveexport-report.md").read_text()
    grid = _tables(markdown)[0]
    header = [c.strip() for c in grid[0].strip("|").split("|")]
    assert header[1:] == [f"`{s}`" for s in SHORTS]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in grid[2:]]
    assert [r[0].split("]")[0].lstrip("[◆ ") for r in rows] == [f"C{i}" for i in range(1, 14)] + [
        "save → load", "save → import", "export → load", "export → import"]
    assert rows[9][0] == "[C10](#c10-import-of-a-save-cannot-run) import of a save: cannot run"
    assert all(len(cell) == 1 for r in rows for cell in r[1:])  # one symbol per cell, the evidence below
    n = len(SHORTS)
    assert rows[1][1:] == ["✗"] * n and rows[0][1:] == ["✓"] * n  # C2 refuted, C1 confirmed everywhere
    assert rows[15][1:] == ["✗"] * n and rows[14][1:] == ["◐"] * n  # export → load refused; save → import
    assert _visible_width(grid) <= 200
    assert markdown.index("## What differs between engines") < markdown.index("## The evidence, row by row")


def test_what_differs_is_sentences_naming_the_engines(rendered):
    model = build(evidence.load(MATRIX))
    said = "\n".join(model.differences)
    assert "export archive → load, the daemon's words:" in said and "`unrecognized image format` on 28.5.2 c8d" in said
    assert "`save` writes: docker-legacy on 20.10.24, podman 4.3.1, podman 5.4.2, podman 5.8.6; oci-image-layout on " \
           "26.1.5, 28.5.2 api≥1.44, 28.5.2 c8d, 28.5.2 c8d 2.1.9." in said
    assert "podman oci archive from podman 4.3.1, loaded: refused on 20.10.24, 26.1.5, 28.5.2 api≥1.44; loads and " \
           "runs on 28.5.2 c8d, 28.5.2 c8d 2.1.9, podman 4.3.1," in said
    assert not any(row.differs for row in model.rows)  # every verdict is the same on the five engines


def test_what_differs_names_what_the_engines_storage_kept():
    document = evidence.load(MATRIX)
    said = build(document).differences
    assert ("`import, then remove the image`, the engine's storage kept: nothing on 20.10.24, 26.1.5, 28.5.2 api≥1.44, "
            "28.5.2 c8d, 28.5.2 c8d 2.1.9; tmp ×1 on podman 4.3.1, podman 5.4.2, podman 5.8.6.") in said
    assert any(line.startswith("over a whole run, the engine's storage kept: ") and "tmp on podman 4.3.1" in line
               for line in said)
    assert not any("`load, then remove the image`" in line for line in said)  # nothing kept anywhere
    # the same kept everywhere is no difference; an engine not measured is left out, not "nothing"
    for o in document["observations"]:
        if o["topic"] == "storage-operation" and o["data"]["operation"] == "import, then remove the image":
            o["data"]["kept"] = {"tmp": 1}
    for s in document["storage"]:
        s["kept"] = [{"kind": "tmp", "after": "t"}]
        if s["engine"] == "podman-4.3.1":
            s["measured"], s["kept"] = False, []
    said = build(document).differences
    assert not any("storage kept" in line and "import" in line for line in said)
    assert not any(line.startswith("over a whole run") for line in said)


def test_a_cell_a_run_did_not_measure_is_not_measured_never_blank():
    document = evidence.load(MATRIX)
    document["observations"] = [o for o in document["observations"]
                                if not (o["topic"] == "move" and o["data"]["target"] == "podman-4.3.1"
                                        and o["data"]["archive"]["kind"] == "docker-save")]
    model = build(document)
    column = [row.cells["podman-4.3.1"].word for row in model.moves if row.kind == "docker-save"]
    assert column and set(column) == {"not measured"}
    summary = reporting.render_summary(document)
    assert "| docker save from 20.10.24 " in summary and " · " in summary


def test_the_html_grid_is_coloured_and_links_each_cell_to_its_evidence(rendered):
    page = (rendered / "saveexport-report.html").read_text()
    assert page.index('<table class="grid" id="grid">') < page.index("<table", page.index("</table>") - 1)
    first_table = page[page.index("<table"):page.index("</table>")]
    assert 'class="grid"' in first_table and first_table.count('<td class="cell yes"') >= 13 * 5 - 10
    for target in set(re.findall(r'<a href="#([^"]+)">', first_table)):
        assert f'id="{target}"' in page, target  # every cell's link leads to its evidence
    assert re.search(r'<td class="cell no" title="28.5.2 c8d: refused — fails: unrecognized image format', page)
    assert "<details open>" not in page  # no row differs: every engine's evidence folded
    document = evidence.load(MATRIX)
    document["claims"]["C2"]["per_engine"]["podman-4.3.1"]["verdict"] = "confirmed"
    differing = reporting.render_page(document, rendered)
    assert differing.count("<details open>") >= 2  # C2: every engine's answer open
    assert '<tr class="differs"><th class="row"><span class="differs"' in differing


def test_no_temporary_path_repeat_or_component_split(rendered):
    markdown = (rendered / "saveexport-report.md").read_text()
    page = (rendered / "saveexport-report.html").read_text()
    for text in (markdown, page):
        assert not re.search(r"(?<!…)/tmp/", text), re.search(r".{80}(?<!…)/tmp/.{40}", text)
    assert "Baseline: `reports/matrix/saveexport-evidence.json`" in markdown
    for table in _tables(markdown):
        assert len(set(table)) == len(table), table[0]  # no row twice
    engines = next(t for t in _tables(markdown) if "components" in t[0])
    assert len(engines) == 2 + len(evidence.load(MATRIX)["engines"])  # header, rule, a row per engine
    assert "Podman Engine 4.3.1, Conmon 2.1.6, OCI Runtime (runc) 1.1.5+ds1 " in "".join(engines)
    subjects = next(t for t in _tables(markdown) if "| engine" in t[0] and "obtained" in t[0])
    assert len(subjects) - 2 <= len(evidence.load(MATRIX)["subjects"])  # a row per engine and image at most


def test_pictures_are_drawn_linked_and_inlined(rendered):
    markdown = (rendered / "saveexport-report.md").read_text()
    page = (rendered / "saveexport-report.html").read_text()
    for name in ("saveexport-layers.png", "saveexport-sizes.png", "saveexport-moves.png"):
        assert (rendered / name).stat().st_size > 5000
        assert f"]({name})" in markdown
    assert page.count('src="data:image/png;base64,') == 3 and ".png\"" not in page


def test_short_labels_fit_nine_columns():
    assert short_label({"kind": "docker", "version": "28.5.2+dfsg4", "image_store": "containerd"}) == "28.5.2 c8d"
    assert short_label({"kind": "docker", "version": "20.10.5+dfsg1", "storage_driver": "vfs"}) == "20.10.5 vfs"
    assert short_label({"kind": "podman", "version": "4.3.1"}) == "podman 4.3.1"
    document = evidence.load(MATRIX)
    have = len(document["engines"])
    more = [dict(e, label=f"{e['label']}-{n}", version=f"{n}.0.{n}")
            for n, e in enumerate(document["engines"][:max(0, 9 - have)])]
    document["engines"] += more
    assert len(build(document).engines) == max(9, have)
    markdown = reporting.render_markdown(document)
    assert _visible_width(_tables(markdown)[0]) <= 200


def test_the_summary_is_text_only_grid_differences_and_regressions():
    document = evidence.load(MATRIX)
    document["baseline"] = {"file": "/tmp/tmp.x/reports/matrix/saveexport-evidence.json",
                            "changes": ["podman-4.3.1: C2 verdict: was 'refuted', now 'confirmed'"], "notes": ["n"]}
    text = reporting.render_summary(document)
    assert text.startswith("## saveexport") and "| C1 save several, load restores all" in text
    assert "### What differs between engines" in text and "**changed** podman-4.3.1: C2 verdict" in text
    assert "reports/matrix/saveexport-evidence.json`" in text and not re.search(r"(?<!…)/tmp/", text)
    assert "<" not in text.replace("<!--", "") and ".png" not in text  # a job summary shows no local pictures


RECORDING = """
def test_one(claim_evidence):
    claim_evidence.verdict("C9", "confirmed", "it failed to load")

def test_two(claim_evidence):
    claim_evidence.verdict("C10", "refuted", "it ran")
"""


def test_the_summary_option_and_github_step_summary(pytester, monkeypatch):
    pytester.makepyfile(RECORDING)
    step = pytester.path / "step-summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    pytester.runpytest(f"--saveexport-report-dir={pytester.path / 'out'}").assert_outcomes(passed=2)
    text = step.read_text()
    assert text.startswith("earlier step\n## saveexport") and "| C10 import of a save: cannot run" in text  # appended to
    pytester.runpytest(f"--saveexport-report-dir={pytester.path / 'out'}", "--saveexport-summary=mine.md")
    assert (pytester.path / "mine.md").read_text().startswith("## saveexport")
    assert step.read_text() == text  # an explicit file replaces the default


def test_with_xdist_only_the_controller_writes_the_summary(pytester, monkeypatch):
    pytest.importorskip("xdist")
    pytester.makepyfile(RECORDING)
    step = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", f"--saveexport-report-dir={pytester.path / 'o'}")
    result.assert_outcomes(passed=2)
    assert step.read_text().count("## saveexport") == 1


def test_every_renderer_reads_the_oldest_committed_evidence(tmp_path):
    """The first evidence the project committed (2026-11-27, one engine, schema 1 before it grew)."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps(OLDEST))
    document = evidence.load(old)
    reporting.write(document, tmp_path / "out")
    markdown = (tmp_path / "out" / "saveexport-report.md").read_text()
    assert "| [C9](#c9-load-of-an-export-fails)" in markdown and "`20.10.24`" in markdown
    assert "not recorded" in markdown  # its subjects do not name their engine


OLDEST = {  # reports/saveexport-evidence.json at d1a8b2a, cut to what differs in shape from today's
    "schema": "saveexport/evidence", "schema_version": 1, "saveexport_version": "0.1.0",
    "created": "2026-11-27T10:00:00+00:00", "started": "2026-11-27T09:55:00+00:00", "run_id": "629dd032",
    "exit_status": 0, "article": "docker save与docker export的区别",
    "machine": {"python": "3.11.7", "platform": "Linux", "pytest": "8.3", "docker_sdk": "7.1.0"},
    "engines": [{"kind": "docker", "version": "20.10.24+dfsg1", "api_version": "1.41", "storage_driver": "overlay2",
                 "image_store": "graphdriver", "endpoint": "unix:///var/run/docker.sock",
                 "components": {"Engine": "20.10.24+dfsg1"}, "label": "docker-20.10.24-overlay2"}],
    "subjects": [{"requested": "postgres:9.6", "source_ref": "saveexport-cache-postgres:9.6-0f38a7bf8632",
                  "obtained": "cached-build", "image_id": "sha256:aff8c7388d93", "run_ref": "saveexport-629dd032-postgres:9.6",
                  "run_id": "sha256:0a6054ce4390", "layers": 12, "size": 378789873, "note": "stand-in"}],
    "claims": {"C9": {"text": "docker load of an export archive fails.", "per_engine": {"docker-20.10.24-overlay2": {
        "verdict": "confirmed", "summary": "open /var/lib/docker/tmp/docker-import-082344818/bin/json",
        "aspects": [{"verdict": "confirmed", "why": "w", "test": "t", "test_outcome": "passed"}]}}}},
    "observations": [{"type": "observation", "topic": "sizes", "test": "t", "engine": "docker-20.10.24-overlay2",
                      "data": {"save_bytes": 387395072, "export_bytes": 381571072, "image_size": 378789873}}],
    "tests": {"t": {"outcome": "passed", "duration_s": 1.0}},
}


def test_the_baseline_is_named_as_given_relative_to_the_project(pytester):
    pytester.makepyfile(RECORDING)
    first = pytester.path / "first"
    pytester.runpytest(f"--saveexport-report-dir={first}").assert_outcomes(passed=2)
    again = pytester.path / "again"
    pytester.runpytest(f"--saveexport-report-dir={again}", f"--saveexport-baseline={first}/saveexport-evidence.json")
    document = json.loads((again / "saveexport-evidence.json").read_text())
    assert document["baseline"]["file"] == "first/saveexport-evidence.json"
    assert "Baseline: `first/saveexport-evidence.json`" in (again / "saveexport-report.md").read_text()
