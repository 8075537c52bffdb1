"""Benchmark the engine matrix: its wall time against the sum of single-engine runs.

Not a test: it prints figures (and writes them as JSON) for a person to judge.

    python benchmarks/matrix_benchmark.py [--engine VALUE ...] [--workers 2 3] [--json out.json]

Each engine's experiments run alone (one pytest process, one engine), one after the other; then all
engines in one run with `-n WORKERS --dist loadgroup` (engines side by side, each in one worker), once
per number of workers asked. The engines default to tox's [matrix] list, in its order (longest first).
Run it on an otherwise idle machine, from the repository root, with the engines' builds cached
(`saveexport provision trixie sid`) and the subject images built once (any earlier run does both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOX_INI = Path(__file__).resolve().parents[1] / "tox.ini"


def matrix_engines() -> list[str]:
    """The engines of `tox -e matrix`, in its order."""
    import configparser

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(TOX_INI)
    return re.findall(r"--saveexport-engine=(\S+)", tox["matrix"]["engines"])

SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*?) in [\d.]+s", re.MULTILINE)


def run(engines: list[str], workers: int, report_dir: Path) -> dict:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "experiments",
            f"--saveexport-report-dir={report_dir}", *(f"--saveexport-engine={e}" for e in engines)]
    if workers > 1:
        argv += ["-n", str(workers), "--dist", "loadgroup"]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - started
    found = SUMMARY.findall(proc.stdout)
    return {"engines": engines, "workers": workers, "seconds": round(seconds, 1), "exit_status": proc.returncode,
            "outcome": found[-1] if found else (proc.stdout.strip().splitlines() or ["no output"])[-1]}


def machine() -> dict:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), "?")
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "memory_kib": memory,
            "python": platform.python_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", help="an engine value (repeatable); default: the CI matrix")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engines = args.engine or matrix_engines()
    with tempfile.TemporaryDirectory(prefix="saveexport-bench-") as tmp:
        singles = []
        for engine in engines:
            singles.append(run([engine], 1, Path(tmp) / f"single-{len(singles)}"))
            print(f"alone   {engine:<24} {singles[-1]['seconds']:>7.1f} s  {singles[-1]['outcome']}", flush=True)
        wholes = [run(engines, workers, Path(tmp) / f"matrix-{workers}") for workers in args.workers]
    total = sum(s["seconds"] for s in singles)
    print(f"sum of single-engine runs        {total:>7.1f} s")
    for whole in wholes:
        print(f"matrix, -n {whole['workers']} --dist loadgroup      {whole['seconds']:>7.1f} s  {whole['outcome']}  "
              f"({whole['seconds'] / total:.2f}x the sum)")
    result = {"benchmark": "saveexport engine matrix vs single-engine runs", "version": 2, "machine": machine(),
              "singles": singles, "sum_of_singles_s": round(total, 1), "matrices": wholes,
              "ratio_to_sum": {str(w["workers"]): round(w["seconds"] / total, 2) for w in wholes}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in [*singles, *wholes]) else 1


if __name__ == "__main__":
    sys.exit(main())
