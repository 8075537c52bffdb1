"""Benchmark the suite against its floor: the same engine calls as a plain docker CLI script.

Not a test: it prints figures (and writes them as JSON) for a person to judge.

    python benchmarks/suite_vs_script.py [--tests experiments] [--rounds 2] [--json out.json]

One engine, the machine's own (`default`: a private engine would be gone when the script runs). Round 1
runs the suite with `--saveexport-record-calls`, turns the record into a script (replay.py) and runs the
script; later rounds run the script first, then the suite unrecorded, so neither side always goes first
on a noisy machine. The suite keeps its files (`--basetemp`) until the script has read them. Per test,
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


def run_script(script: Path) -> dict:
    started = time.monotonic()
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    return {"seconds": round(time.monotonic() - started, 1), "exit_status": proc.returncode}


def breakdown(entries: list[dict], junit: Path) -> dict:
    """Per test: its wall time (setup, call and teardown), its engine calls by kind, and the rest."""
    per_test: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for entry in entries:
        test = entry.get("test") or "(before the first test)"
        per_test[test][kind_of(entry["method"], entry["path"], entry.get("params") or {})] += entry.get("seconds", 0)
    wall = {}  # junit names a module-level test by its module (classname) and name
    for case in ET.parse(junit).getroot().iter("testcase"):
        nodeid = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        wall[nodeid] = float(case.get("time") or 0)
    rows = []
    for test, kinds in per_test.items():
        seconds = wall.get(test, 0.0)
        engine = sum(kinds.values())
        rows.append({"test": test, "seconds": round(seconds, 1), "engine_calls_s": round(engine, 1),
                     "rest_s": round(max(seconds - engine, 0.0), 1),
                     "by_kind_s": {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v >= 0.05}})
    rows.sort(key=lambda row: -row["seconds"])
    totals: dict[str, float] = defaultdict(float)
    for kinds in per_test.values():
        for kind, seconds in kinds.items():
            totals[kind] += seconds
    return {"tests": rows, "engine_calls_by_kind_s": {k: round(v, 1) for k, v in
                                                      sorted(totals.items(), key=lambda kv: -kv[1])}}


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
    suite_runs, script_runs = [], []
    with tempfile.TemporaryDirectory(prefix="saveexport-floor-") as tmp:
        tmp_path = Path(tmp)
        record, script = tmp_path / "record", tmp_path / "replay.sh"
        first = run_suite(args.tests, tmp_path / "round-1" / "basetemp", record, tmp_path / "round-1.xml")
        suite_runs.append(dict(first, recorded=True))
        entries = read(sorted(record.glob("calls-*.jsonl")))
        made = replay.replay(entries)
        script.write_text("\n".join(made.lines) + "\n")
        script_runs.append(run_script(script))
        for number in range(2, args.rounds + 1):
            # the script reads what round 1's suite made outside the engine: that basetemp stays
            script_runs.append(run_script(script))
            suite_runs.append(dict(run_suite(args.tests, tmp_path / f"round-{number}" / "basetemp", None,
                                             tmp_path / f"round-{number}.xml"), recorded=False))
        details = breakdown(entries, tmp_path / "round-1.xml")
    suite_s = statistics.median(r["seconds"] for r in suite_runs)
    script_s = statistics.median(r["seconds"] for r in script_runs)
    result = {"benchmark": "saveexport suite vs its replayed engine calls", "version": 1, "machine": machine(),
              "engine": engine_facts(), "tests": args.tests, "engine_calls": len(entries),
              "not_replayed": made.skipped, "suite": suite_runs, "script": script_runs,
              "median_suite_s": suite_s, "median_script_s": script_s,
              "ratio": round(suite_s / script_s, 2) if script_s else None, **details}
    print(f"suite {suite_s:.0f} s, script {script_s:.0f} s: the suite takes {result['ratio']}x its floor "
          f"({len(entries)} engine calls, rounds: {args.rounds})")
    print("engine calls by kind (s): " + ", ".join(f"{k} {v}" for k, v in
                                                   list(result["engine_calls_by_kind_s"].items())[:10]))
    for row in result["tests"][:12]:
        print(f"{row['seconds']:7.1f} s  engine {row['engine_calls_s']:6.1f} s  rest {row['rest_s']:6.1f} s  "
              f"{row['test']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in suite_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
