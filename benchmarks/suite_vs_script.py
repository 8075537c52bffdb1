"""Benchmark the suite against its floor: the same engine calls as a plain docker CLI script.

Not a test: it prints figures (and writes them as JSON) for a person to judge.

    python benchmarks/suite_vs_script.py [--tests experiments] [--rounds 2] [--json out.json]

One engine, the machine's own (`default`: a private engine would be gone when the script runs). Round 1
runs the suite with `--saveexport-record-calls`, turns the record into a script (replay.py) and runs the
script; later rounds run the script first, then the suite unrecorded, so neither side always goes first
on a noisy machine. A second engine the suite starts (the air-gap's empty one) the script starts and
stops where the suite did, with the same argv and files, and compose's commands run as the suite ran
them. The suite keeps its files (`--basetemp`) until the script has read them. Per test,
the record splits the suite's time into engine calls by kind and the rest (waits in Python, hashing,
the fewest-`--change` search, reading archives). Run it from the repository root after any earlier run
(the subject images cached), with `docker` on PATH speaking to the machine's engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugin"))
sys.path.insert(0, str(HERE))

import replay  # noqa: E402
from saveexport.calls import read  # noqa: E402

SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*?) in [\d.]+s", re.MULTILINE)


def kind_of(method: str, path: str, params: dict) -> str:
    """The engine operation a request belongs to, as a reader would name it."""
    parts = path.strip("/").split("/")
    last = parts[-1] if parts else ""
    named = {"/images/get": "save", "/images/load": "load", "/build": "build", "/commit": "commit",
             "/containers/create": "create", "/_ping": "contact", "/version": "contact", "/info": "contact",
             "/system/df": "disk usage"}
    if path in named:
        return named[path]
    if path == "/images/create":
        return "import" if params.get("fromSrc") else "pull"
    if method == "DELETE":
        return "remove"
    if parts[0] == "exec" or last == "exec":  # /exec/ID/start is an exec's, not a container's start
        return "exec"
    if last in ("start", "wait", "export", "logs", "stop", "kill", "tag"):
        return last
    if last == "archive":
        return "cp"
    if last == "json":
        return "list" if len(parts) == 2 else "inspect"
    return f"{method} other"


def run_suite(tests: str, basetemp: Path, record: Path | None, junit: Path) -> dict:
    basetemp.parent.mkdir(parents=True, exist_ok=True)  # pytest makes the basetemp, not its parents
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", tests, f"--basetemp={basetemp}",
            f"--junitxml={junit}", f"--saveexport-report-dir={basetemp.parent / 'report'}"]
    if record is not None:
        argv.append(f"--saveexport-record-calls={record}")
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - started
    found = SUMMARY.findall(proc.stdout)
    return {"seconds": round(seconds, 1), "exit_status": proc.returncode,
            "outcome": found[-1] if found else (proc.stdout.strip().splitlines() or ["no output"])[-1]}


def run_script(script: Path, times: Path) -> dict:
    """The script's wall time, and each test's part of it (the script marks where a test's calls start)."""
    times.unlink(missing_ok=True)
    started = time.monotonic()
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env=dict(os.environ, SAVEEXPORT_REPLAY_TIMES=str(times)))
    seconds = round(time.monotonic() - started, 1)
    marks = [line.split(" ", 1) for line in times.read_text().splitlines()] if times.exists() else []
    per_test: dict[str, float] = defaultdict(float)
    for (at, test), (after, _) in zip(marks, marks[1:]):
        per_test[test] += float(after) - float(at)
    return {"seconds": seconds, "exit_status": proc.returncode,
            "per_test_s": {test: round(value, 2) for test, value in per_test.items()},
            # what the script itself says went wrong (a private engine that did not answer)
            "complaints": [line for line in proc.stderr.splitlines() if line.startswith("replay:")]}


def junit_times(junit: Path) -> dict[str, float]:
    """Each test's wall time (setup, call and teardown); junit names a module-level test by its module
    (classname) and name."""
    wall = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        nodeid = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        wall[nodeid] = float(case.get("time") or 0)
    return wall


WAIT = "deliberate wait"  # the suite's own sleeps (calls.pause): the script sleeps as long
ENGINE = "private engine start/stop"  # a second engine's life (the air-gap's empty one): the script's too
CLI = "compose (its own calls)"  # what compose asks of an engine never passes the suite's clients


def breakdown(entries: list[dict], suite_times: list[dict[str, float]], script_runs: list[dict],
              skipped_in: set[str] = frozenset()) -> dict:
    """Per test: its wall time in the suite and in the script (medians over the rounds), the suite's engine
    calls by kind (with compose's commands and the private engines' starts and stops), its deliberate
    waits, and the rest (Python: hashing, reading archives, the search's logic). A test is whole in the
    script when every call it made was replayed on the engine it went to (`skipped_in`: tests a call of
    which the replay could not write)."""
    per_test: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    endpoints: dict[str, set[str]] = defaultdict(set)
    started = replay.started_endpoints(entries)
    for entry in entries:
        test = entry.get("test") or "(before the first test)"
        method = entry["method"]
        kind = {"SLEEP": WAIT, "ENGINE": ENGINE, "CLI": CLI}.get(method) or \
            kind_of(method, entry["path"], entry.get("params") or {})
        per_test[test][kind] += entry.get("seconds", 0)
        if entry.get("endpoint") and method != "ENGINE":
            endpoints[test].add(entry["endpoint"])
    main = replay.main_endpoint(entries)
    rows = []
    for test, kinds in per_test.items():
        seconds = statistics.median([t.get(test, 0.0) for t in suite_times] or [0.0])
        script_s = statistics.median([r["per_test_s"].get(test, 0.0) for r in script_runs] or [0.0])
        waits = kinds.get(WAIT, 0.0)
        engine = sum(v for k, v in kinds.items() if k != WAIT)
        rows.append({"test": test, "seconds": round(seconds, 1), "script_s": round(script_s, 1),
                     "ratio": round(seconds / script_s, 2) if script_s >= 0.5 else None,
                     "engine_calls_s": round(engine, 1), "waits_s": round(waits, 1),
                     "rest_s": round(max(seconds - engine - waits, 0.0), 1),
                     # an engine neither the machine's nor one the record started is not in the script
                     "whole_in_script": endpoints[test] <= {main} | started and test not in skipped_in,
                     "by_kind_s": {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v >= 0.05}})
    rows.sort(key=lambda row: -row["seconds"])
    totals: dict[str, float] = defaultdict(float)
    for kinds in per_test.values():
        for kind, seconds in kinds.items():
            totals[kind] += seconds
    whole = [row for row in rows if row["whole_in_script"]]
    suite_whole, script_whole = sum(r["seconds"] for r in whole), sum(r["script_s"] for r in whole)
    return {"per_test": rows, "engine_calls_by_kind_s": {k: round(v, 1) for k, v in
                                                         sorted(totals.items(), key=lambda kv: -kv[1])},
            "whole_in_script": {"tests": len(whole), "suite_s": round(suite_whole, 1),
                                "script_s": round(script_whole, 1),
                                "ratio": round(suite_whole / script_whole, 2) if script_whole else None}}


def engine_facts() -> dict:
    proc = subprocess.run(["docker", "version", "--format", "{{json .Server}}"], capture_output=True, text=True)
    try:
        server = json.loads(proc.stdout)
        return {"version": server.get("Version"), "api": server.get("APIVersion"), "os": server.get("Os")}
    except ValueError:
        return {"error": (proc.stderr.strip().splitlines() or ["no answer"])[-1]}


def machine() -> dict:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), "?")
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "memory_kib": memory,
            "python": platform.python_version(), "load_average": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", default="experiments", help="what pytest runs (default: experiments)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    suite_runs, script_runs, suite_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="saveexport-floor-") as tmp:
        tmp_path = Path(tmp)
        record, script, times = tmp_path / "record", tmp_path / "replay.sh", tmp_path / "script-times"
        first = run_suite(args.tests, tmp_path / "round-1" / "basetemp", record, tmp_path / "round-1.xml")
        suite_runs.append(dict(first, recorded=True))
        suite_times.append(junit_times(tmp_path / "round-1.xml"))
        entries = read(sorted(record.glob("calls-*.jsonl")))
        made = replay.replay(entries)
        script.write_text("\n".join(made.lines) + "\n")
        script_runs.append(run_script(script, times))
        for number in range(2, args.rounds + 1):
            # the script reads what round 1's suite made outside the engine: that basetemp stays
            script_runs.append(run_script(script, times))
            junit = tmp_path / f"round-{number}.xml"
            suite_runs.append(dict(run_suite(args.tests, tmp_path / f"round-{number}" / "basetemp", None, junit),
                                   recorded=False))
            suite_times.append(junit_times(junit))
        details = breakdown(entries, suite_times, script_runs, made.skipped_in)
    suite_s = statistics.median(r["seconds"] for r in suite_runs)
    script_s = statistics.median(r["seconds"] for r in script_runs)
    result = {"benchmark": "saveexport suite vs its replayed engine calls", "version": 3, "machine": machine(),
              "engine": engine_facts(), "selection": args.tests, "engine_calls": len(entries),
              "not_replayed": made.skipped, "suite": suite_runs, "script": script_runs,
              "median_suite_s": suite_s, "median_script_s": script_s,
              "ratio": round(suite_s / script_s, 2) if script_s else None, **details}
    whole = result["whole_in_script"]
    print(f"suite {suite_s:.0f} s, script {script_s:.0f} s: the suite takes {result['ratio']}x its floor "
          f"({len(entries)} engine calls, rounds: {args.rounds}); the {whole['tests']} tests the script replays "
          f"whole: {whole['suite_s']:.0f} s against {whole['script_s']:.0f} s, {whole['ratio']}x")
    print("engine calls by kind (s): " + ", ".join(f"{k} {v}" for k, v in
                                                   list(result["engine_calls_by_kind_s"].items())[:10]))
    print(f"{'suite':>7}  {'script':>7}  {'ratio':>5}  {'engine':>6}  {'waits':>6}  {'rest':>6}  test")
    for row in result["per_test"][:15]:
        print(f"{row['seconds']:7.1f}  {row['script_s']:7.1f}  {row['ratio'] or '':>5}  {row['engine_calls_s']:6.1f}  "
              f"{row['waits_s']:6.1f}  {row['rest_s']:6.1f}  {row['test']}" + ("" if row["whole_in_script"] else
                                                                              "  (not whole in the script)"))
    for complaint in sorted({c for run in script_runs for c in run.get("complaints", [])}):
        print(complaint)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in suite_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
