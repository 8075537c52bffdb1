"""The move matrix's own logic: writers, the two passes, and merging their evidence into one report."""

from __future__ import annotations

import json
import subprocess
import sys

from saveexport.engines import EngineFacts
from saveexport.evidence import merge
from saveexport.moves import writer_of


def _facts(kind="docker", version="28.5.2+dfsg1", store="graphdriver", variant="") -> EngineFacts:
    return EngineFacts(kind=kind, version=version, api_version="1.51", min_api_version="1.24", os="linux",
                       arch="amd64", kernel="6.1", storage_driver="overlay2", image_store=store, endpoint="unix:///x",
                       variant=variant)


def test_a_raised_api_floor_writes_as_its_build_does_and_a_store_is_a_writer_of_its_own():
    assert writer_of(_facts(variant="min-api-1.44")) == writer_of(_facts()) == "docker-28.5.2-overlay2"
    assert writer_of(_facts(store="containerd")) == "docker-28.5.2-containerd"
    assert writer_of(_facts(kind="podman", version="4.3.1")) == "podman-4.3.1"
    # on another containerd than the host's, the store may write otherwise: a writer of its own
    assert writer_of(_facts(store="containerd", variant="2.1.9")) == "docker-28.5.2-containerd-2.1.9"
    assert writer_of(_facts(store="containerd", variant="2.1.9-min-api-1.44")) == "docker-28.5.2-containerd-2.1.9"


def test_each_pass_deselects_the_other(pytester):
    pytester.makepyfile(test_passes="""
        import pytest

        @pytest.mark.move_pass("make")
        def test_make():
            pass

        @pytest.mark.move_pass("load")
        def test_load():
            pass

        def test_other():
            pass
    """)
    made = pytester.runpytest_subprocess("-p", "no:randomly", "--saveexport-move-pass=make", "--co", "-q")
    assert "test_passes.py::test_make" in made.stdout.str() and "test_passes.py::test_load" not in made.stdout.str()
    loaded = pytester.runpytest_subprocess("-p", "no:randomly", "--saveexport-move-pass=load", "--co", "-q")
    assert "test_passes.py::test_load" in loaded.stdout.str() and "test_passes.py::test_make" not in loaded.stdout.str()
    both = pytester.runpytest_subprocess("-p", "no:randomly", "--co", "-q")
    assert "3 tests collected" in both.stdout.str()
    wrong = pytester.runpytest_subprocess("--saveexport-move-pass=sideways")
    assert wrong.ret != 0 and "sideways" in wrong.stderr.str()


def _document(run_id: str, engine: str, verdict: str, topic: str, exit_status: int = 0) -> dict:
    return {"schema": "saveexport/evidence", "schema_version": 1, "run_id": run_id, "created": "now",
            "exit_status": exit_status, "engines": [dict(_facts().to_dict(), label=engine)], "subjects": [], "leaks": [], "storage": [],
            "expectations": [], "new_behaviours": [], "faults": [], "debian_mirror": None,
            "claims": {"C1": {"text": "t", "per_engine": {engine: {"verdict": verdict, "summary": "", "aspects": []}}}},
            "observations": [{"topic": topic, "test": f"t::{run_id}", "engine": engine, "data": {}}],
            "tests": {f"t::{run_id}": {"outcome": "passed", "duration_s": 1}}}


def test_merging_keeps_each_runs_verdicts_observations_and_tests():
    matrix = _document("a", "docker-1", "confirmed", "sizes")
    moves = _document("b", "docker-1", "no verdict", "move", exit_status=1)
    moves["engines"].append(dict(_facts(kind="podman").to_dict(), label="podman-4"))
    merged = merge([matrix, moves])
    assert merged["claims"]["C1"]["per_engine"]["docker-1"]["verdict"] == "confirmed"  # not the move pass's
    assert [o["topic"] for o in merged["observations"]] == ["sizes", "move"]
    assert set(merged["tests"]) == {"t::a", "t::b"} and merged["exit_status"] == 1
    assert [e["label"] for e in merged["engines"]] == ["docker-1", "podman-4"]
    assert [m["run_id"] for m in merged["merged_from"]] == ["a", "b"]


def test_the_report_command_merges_evidence_files(tmp_path):
    paths = []
    for run_id, topic in (("a", "note-a"), ("b", "note-b")):
        path = tmp_path / f"{run_id}.json"
        path.write_text(json.dumps(_document(run_id, "docker-1", "confirmed", topic)))
        paths.append(str(path))
    out = tmp_path / "out" / "report.md"
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "report", *paths, "-o", str(out), "--evidence-out",
                           str(tmp_path / "out" / "merged.json")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "merged.json").read_text())["tests"].keys() == {"t::a", "t::b"}
    assert out.read_text().startswith("#")
    bad = subprocess.run([sys.executable, "-m", "saveexport.cli", "report", paths[0], str(tmp_path / "missing.json")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.json" in bad.stderr


def test_a_pass_that_speaks_to_no_claim_changes_no_verdict():
    from saveexport.baseline import compare

    matrix = _document("a", "docker-1", "confirmed", "note")
    moves = _document("b", "docker-1", "no verdict", "note")
    changes, notes = compare(matrix, moves)
    assert changes == [], (changes, notes)
    failed = _document("c", "docker-1", "no verdict", "note")
    failed["claims"]["C1"]["per_engine"]["docker-1"]["aspects"] = [{"verdict": "confirmed", "test_outcome": "failed"}]
    assert compare(matrix, failed)[0] == ["docker-1: C1 verdict: was 'confirmed', now 'no verdict'"]


def test_storage_kept_is_a_change_only_when_an_engine_keeps_a_kind_it_did_not():
    from saveexport.baseline import compare

    def with_storage(run_id: str, kinds: list[str]) -> dict:
        document = _document(run_id, "docker-1", "confirmed", "note")
        document["storage"] = [{"engine": "docker-1", "measured": True, "shared": False,
                                "kept": [{"kind": kind, "name": "x", "after": "t"} for kind in kinds]}]
        return document

    baseline = with_storage("a", ["rw-layer", "driver-dir"])
    assert compare(baseline, with_storage("b", ["driver-dir", "rw-layer"])) == ([], [])
    changes, notes = compare(baseline, with_storage("c", []))  # a pass that keeps less: noted only
    assert changes == [] and notes and "fewer kinds" in notes[0]
    changes, _ = compare(baseline, with_storage("d", ["rw-layer", "content-blob"]))
    assert changes and "keeps what it did not" in changes[0]


def test_what_a_partial_run_did_not_measure_is_one_line_per_engine_counted_by_family():
    """A job of part of the suite (the move pass) leaves hundreds of baseline facts unmeasured: a reader
    gets one line per engine saying which parts, not every cell; a few are still listed one by one."""
    from saveexport.baseline import compare

    def with_moves(run_id: str, writers: list[str]) -> dict:
        document = _document(run_id, "docker-1", "confirmed", "note")
        document["observations"] = [
            {"type": "observation", "topic": "move",
             "data": {"archive": {"kind": "docker-save", "writer": w}, "target_engine": "docker-1",
                      "outcome": "loads and runs"}} for w in writers]
        return document

    writers = [f"engine-{n}" for n in range(6)]
    changes, notes = compare(with_moves("a", writers), with_moves("b", []))
    assert changes == [] and notes == ["docker-1: 6 facts of the baseline not measured in this run (6 move cells)"]
    changes, notes = compare(with_moves("a", writers), with_moves("b", writers[:4]))
    assert changes == [] and len(notes) == 2 and all("not measured in this run (was 'loads and runs')" in n for n in notes)
    moved_elsewhere = with_moves("c", writers[:1])
    moved_elsewhere["observations"][0]["data"]["outcome"] = "refused"
    changes, _ = compare(with_moves("a", writers), moved_elsewhere)
    assert changes == ["docker-1: move docker-save by engine-0: was 'loads and runs', now 'refused'"]
