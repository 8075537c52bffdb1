"""Many jobs, one report: the committed five-engine evidence split into one file per engine (as one CI job
per engine writes it), merged back by `saveexport report`, and checked: the grid, the differences, the exit
status; a planted regression against the baseline; a missing engine; the same engine twice; schemas."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from saveexport import cli, evidence
from saveexport.reporting.model import build

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "reports" / "matrix" / "saveexport-evidence.json"


def split(document: dict, directory: Path) -> list[Path]:
    """One evidence file per engine, each in a directory of its own as download-artifact lays them out."""
    labels = [e["label"] for e in document["engines"]]
    paths = []
    for n, label in enumerate(labels):
        part = copy.deepcopy(document)
        part.pop("merged_from", None)
        part.pop("baseline", None)
        part["run_id"] = f"job{n}"
        part["engines"] = [e for e in document["engines"] if e["label"] == label]
        for data in part["claims"].values():
            data["per_engine"] = {k: v for k, v in data["per_engine"].items() if k == label}
        for key in ("observations", "leaks", "storage", "expectations", "new_behaviours", "faults"):
            part[key] = [item for item in document.get(key) or [] if item.get("engine") == label]
        mine, anyone = {o["test"] for o in part["observations"]}, {o["test"] for o in document["observations"]}
        part["tests"] = {k: v for k, v in document["tests"].items() if k in mine or (n == 0 and k not in anyone)}
        part["subjects"] = document["subjects"] if n == 0 else []
        path = directory / f"evidence-{label}" / "saveexport-evidence.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(part, ensure_ascii=False))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def original() -> dict:
    return evidence.load(MATRIX)


@pytest.fixture
def parts(original, tmp_path) -> list[Path]:
    return split(original, tmp_path / "artifacts")


def _report(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "saveexport.cli", "report", *argv], capture_output=True, text=True,
                          timeout=300, check=False)


def _grid(model) -> list[tuple]:
    return [(r.key, tuple(r.cells[e.label].word for e in model.engines)) for r in model.rows]


def _moves(model) -> list[tuple]:
    return [(r.kind, r.source, tuple(c.word for c in r.cells.values())) for r in model.moves]


def test_split_and_merged_back_the_grid_and_differences_are_the_originals(original, parts, tmp_path):
    out = tmp_path / "merged"
    proc = _report(*map(str, parts), "-o", str(out / "report.html"), "--evidence-out", str(out / "merged.json"),
                   "--expect", str(len(parts)), "--baseline", str(MATRIX), "--summary", str(out / "summary.md"))
    assert proc.returncode == 0, proc.stderr
    assert "every engine behaved as in the baseline" in proc.stderr and "CHANGED" not in proc.stderr
    merged = evidence.load(out / "merged.json")
    assert [m["run_id"] for m in merged["merged_from"]] == [f"job{n}" for n in range(len(parts))]
    assert not merged["merge_warnings"]
    before, after = build(original), build(merged)
    assert [e.short for e in after.engines] == [e.short for e in before.engines]
    assert _grid(after) == _grid(before) and _moves(after) == _moves(before)
    assert after.differences == before.differences and len(after.differences) >= 6
    page = (out / "report.html").read_text()
    assert page.index('<table class="grid" id="grid">') == page.index("<table")
    summary = (out / "summary.md").read_text()
    assert "| C9 load of an export fails" in summary and "`unrecognized image format` on 28.5.2 c8d" in summary


def test_a_planted_regression_fails_with_the_baselines_readable_diff(original, parts, tmp_path):
    podman = next(p for p in parts if "podman-4.3.1" in str(p))
    document = json.loads(podman.read_text())
    document["claims"]["C9"]["per_engine"]["podman-4.3.1"]["verdict"] = "refuted"
    podman.write_text(json.dumps(document))
    proc = _report(*map(str, parts), "-o", str(tmp_path / "r.md"), "--baseline", str(MATRIX), "--expect",
                   str(len(parts)))
    assert proc.returncode == 1
    assert "CHANGED  podman-4.3.1: C9 verdict: was 'confirmed', now 'refuted'" in proc.stderr
    assert "Traceback" not in proc.stderr
    markdown = (tmp_path / "r.md").read_text()
    assert "**changed** podman-4.3.1: C9 verdict" in markdown
    assert f"C9 differs between the {len(parts)} engines (◆)" in markdown.split("| claim or archive")[0]  # above it
    grid_row = next(line for line in markdown.splitlines() if line.startswith("| ◆ [C9]"))
    assert grid_row.count("✓") == len(parts) - 1 and grid_row.count("✗") == 1  # the row now differs, and says so
    others = ", ".join(e.short for e in build(original).engines if e.short != "podman 4.3.1")
    assert f"C9 (load of an export fails): confirmed on {others}; refuted on podman 4.3.1." in markdown


def test_a_missing_engine_fails_expect_and_its_moves_are_not_measured(parts, tmp_path):
    kept = [p for p in parts if "docker-26.1.5" not in str(p)]
    proc = _report(*map(str, kept), "-o", str(tmp_path / "r.md"), "--evidence-out", str(tmp_path / "m.json"),
                   "--expect", str(len(parts)))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"saveexport: expected {len(parts)} engines, {len(kept)} arrived (")
    model = build(evidence.load(tmp_path / "m.json"))
    assert "26.1.5" not in [e.short for e in model.engines]
    assert _report(*map(str, kept), "-o", str(tmp_path / "r.md"), "--expect", str(len(kept))).returncode == 0


def test_moves_between_engines_of_separate_jobs_are_not_measured(parts, tmp_path):
    """Each job alone moves only to itself: what another job's engine would have done is not measured."""
    alone = []
    for path in parts:
        document = json.loads(path.read_text())
        document["observations"] = [o for o in document["observations"] if o["topic"] != "move"
                                    or o["data"]["archive"].get("source_engine") == o["data"]["target"]]
        path.write_text(json.dumps(document))
        alone.append(str(path))
    assert _report(*alone, "--evidence-out", str(tmp_path / "m.json"), "-o", str(tmp_path / "r.md")).returncode == 0
    model = build(evidence.load(tmp_path / "m.json"))
    docker = [r for r in model.moves if r.kind == "docker-save"]
    assert docker and all(sum(c.word != "not measured" for c in r.cells.values()) == 1 for r in docker)
    markdown = (tmp_path / "r.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| docker save from 20.10.24"))
    targets = row.count("|") - 2  # the cells after the archive's
    assert row.count("·") == targets - 1 and row.count("✓") == 1


def test_the_same_engine_twice_is_merged_when_the_runs_agree_and_shown_twice_when_not(parts, tmp_path):
    first = json.loads(parts[0].read_text())
    again = dict(first, run_id="rerun")
    agree = tmp_path / "agree.json"
    agree.write_text(json.dumps(again))
    merged = evidence.merge([evidence.load(parts[0]), evidence.load(agree)], ["a.json", "agree.json"])
    assert len(merged["engines"]) == 1 and merged["merge_warnings"] == []
    label = first["engines"][0]["label"]
    again["claims"]["C2"]["per_engine"][label]["verdict"] = "confirmed"
    disagree = tmp_path / "disagree.json"
    disagree.write_text(json.dumps(again))
    proc = _report(str(parts[0]), str(disagree), "--evidence-out", str(tmp_path / "m.json"), "-o",
                   str(tmp_path / "r.md"))
    assert proc.returncode == 0
    assert f"saveexport: warning: {label} is in" in proc.stderr and "C2 verdict: 'refuted' in" in proc.stderr
    model = build(evidence.load(tmp_path / "m.json"))
    assert [e.label for e in model.engines] == [label, f"{label} (run rerun)"]
    assert [c.word for c in model.rows[1].cells.values()] == ["refuted", "confirmed"] and model.rows[1].differs
    assert "> **Warning:**" in (tmp_path / "r.md").read_text()


@pytest.mark.parametrize("content, said", [
    ('{"schema": "saveexport/evidence", "schema_version": 2}', "evidence schema 2, which this saveexport"),
    ('{"schema": "saveexport/evidence", "schema_version": 0}', "not a version ever written"),
    ('{"schema": "other"}', "is not a saveexport evidence file"),
    ("[1, 2]", "is not a saveexport evidence file"),
    ("{", "cannot read evidence"),
])
def test_a_schema_this_version_cannot_read_is_one_line_and_exit_2(tmp_path, capsys, content, said):
    path = tmp_path / "x.json"
    path.write_text(content)
    assert cli.main(["report", str(MATRIX), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and err.startswith("saveexport: ")


def _committed_evidence() -> list[tuple[str, str]]:
    """(commit, path) of every evidence file the project committed, where this is a git checkout with history."""
    paths = ["reports/saveexport-evidence.json", "reports/matrix/saveexport-evidence.json"]
    if not shutil.which("git") or not (ROOT / ".git").exists():
        return []
    log = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--", *paths], capture_output=True, text=True,
                         check=False)
    return [(commit, path) for commit in log.stdout.split() for path in paths]


def test_every_evidence_file_the_project_committed_is_read_merged_and_rendered(tmp_path):
    found = []
    for commit, path in _committed_evidence():
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, check=False)
        if shown.returncode == 0:
            target = tmp_path / f"{commit[:8]}-{path.replace('/', '-')}"
            target.write_bytes(shown.stdout)
            found.append(str(target))
    if len(found) < 2:
        pytest.skip("no git history of the committed evidence here (a shallow clone or an sdist)")
    proc = _report(*found, "-o", str(tmp_path / "all.html"), "--evidence-out", str(tmp_path / "all.json"))
    assert proc.returncode == 0, proc.stderr
    for one in found[-3:]:  # the oldest, each alone
        assert _report(one, "-o", str(tmp_path / "one.md")).returncode == 0
    assert '<table class="grid" id="grid">' in (tmp_path / "all.html").read_text()


def test_an_engine_whose_runs_kept_different_storage_is_one_engine():
    """The matrix keeps what its tests leave; its move pass, with fewer tests, keeps less: the same engine."""
    def run(run_id, kinds):
        return {"schema": 1, "run_id": run_id, "engines": [{"label": "docker-26.1.5-overlay2"}], "claims": {},
                "observations": [], "storage": [{"engine": "docker-26.1.5-overlay2", "measured": True,
                                                 "kept": [{"kind": kind} for kind in kinds]}]}
    documents, warnings = evidence._apart_where_they_disagree([run("a", ["rw-layer", "driver-dir"]), run("b", [])],
                                                              ["matrix.json", "moves.json"])
    assert warnings == []
    assert [e["label"] for d in documents for e in d["engines"]] == ["docker-26.1.5-overlay2"] * 2
