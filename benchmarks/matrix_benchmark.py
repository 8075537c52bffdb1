"""Benchmark the engine matrix: its wall time against the sum of single-engine runs.

Not a test: it prints figures (and writes them as JSON) for a person to judge.

    python benchmarks/matrix_benchmark.py [--engine VALUE ...] [--workers 2 3] [--json out.json]

Each engine's experiments run alone (one pytest process, one engine), one after the other; then all
engines in one run with `-n WORKERS --dist loadgroup` (engines side by side, each in one worker), once
per number of workers asked. The engines default to tox's [matrix] list, in its order (longest first).
Each run also counts the machine's busy CPU time (and its cores' wait for the disk) and, sampled from
/proc, the CPU time by process name: on 2 cores, single runs that each keep more than one core busy
cannot run side by side at half their sum, and the figures give that floor beside the wall times. The
breakdown compares each test's time alone and side by side (from each run's evidence) and counts the
time workers had no test to run: whether the matrix loses to tests slowing each other or to idle workers.
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
import threading
import time
from collections import defaultdict
from pathlib import Path

TOX_INI = Path(__file__).resolve().parents[1] / "tox.ini"


def matrix_engines() -> list[str]:
    """The engines of `tox -e matrix`, in its order."""
    import configparser

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(TOX_INI)
    return re.findall(r"--saveexport-engine=(\S+)", tox["matrix"]["engines"])

SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*?) in [\d.]+s", re.MULTILINE)


TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time the whole machine spent busy (every core, every process) since boot, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = _cpu_fields()
    return (user + nice + system + irq + softirq + steal) / TICK


def iowait_seconds() -> float:
    """Idle time of the cores while a process waited for the disk: where a run is bound by I/O, not CPU."""
    return _cpu_fields()[4] / TICK


def _cpu_fields() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


class CpuByProcess:
    """CPU seconds by process name while a run goes, sampled from /proc twice a second: what a 2-core
    machine spends them on (pytest's own Python, dockerd, containerd, shims, compose, …). A process that
    lives less than a sample is missed: the run's figures keep the machine's busy time beside this."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.seen, self.by_name = every_s, {}, defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                text = (proc / "stat").read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            rest = text[text.rindex(")") + 2:].split()
            used = (int(rest[11]) + int(rest[12])) / TICK  # utime, stime
            key = (proc.name, rest[19])  # the pid and its start time: a reused pid is another process
            before = self.seen.get(key)
            self.seen[key] = used
            self.by_name[name] += used - (before if before is not None else used)

    def _loop(self) -> None:
        self._sample()  # what ran before the run is the baseline, not the run's
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> "CpuByProcess":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def top(self, limit: int = 8) -> dict[str, float]:
        ranked = sorted(self.by_name.items(), key=lambda kv: -kv[1])
        return {name: round(seconds, 1) for name, seconds in ranked[:limit] if seconds >= 0.5}


def run(engines: list[str], workers: int, report_dir: Path) -> dict:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "experiments",
            f"--saveexport-report-dir={report_dir}", *(f"--saveexport-engine={e}" for e in engines)]
    if workers > 1:
        argv += ["-n", str(workers), "--dist", "loadgroup"]
    busy, iowait = busy_seconds(), iowait_seconds()
    started = time.monotonic()
    with CpuByProcess() as by_process:
        proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - started
    busy, iowait = busy_seconds() - busy, iowait_seconds() - iowait
    found = SUMMARY.findall(proc.stdout)
    return {"engines": engines, "workers": workers, "seconds": round(seconds, 1), "exit_status": proc.returncode,
            "outcome": found[-1] if found else (proc.stdout.strip().splitlines() or ["no output"])[-1],
            "cpu_busy_s": round(busy, 1), "iowait_s": round(iowait, 1), "cores_used": round(busy / seconds, 2) if seconds else None,
            "cpu_by_process_s": by_process.top(), "test_seconds": test_seconds(report_dir / "saveexport-evidence.json")}


def test_seconds(evidence: Path) -> dict[str, float]:
    """Each test's time (set-up, call and teardown, as the evidence records it), by test id: the id names
    the engine, so a test alone and side by side compare by id."""
    try:
        tests = json.loads(evidence.read_text()).get("tests") or {}
    except (OSError, ValueError):
        return {}
    return {nodeid: float(t.get("duration_s") or 0.0) for nodeid, t in tests.items()}


def breakdown(singles: list[dict], whole: dict, top: int = 8) -> dict:
    """Where a side-by-side run's time went against the same tests alone: how much longer the tests took
    (each engine's tests slowed by the other worker's), and how long workers had no test to run (start-up,
    collection, the last engine's tail). The matrix's wall is (tests side by side + idle) / workers."""
    alone = {k: v for s in singles for k, v in (s.get("test_seconds") or {}).items()}
    side = whole.get("test_seconds") or {}
    common = sorted(set(alone) & set(side))
    if not common:
        return {}
    workers, wall = whole["workers"], whole["seconds"]
    by_engine: dict[str, list[float]] = {}
    for single in singles:
        ids = set(single.get("test_seconds") or {}) & set(side)
        by_engine[" ".join(single["engines"])] = [round(sum(alone[i] for i in ids), 1), round(sum(side[i] for i in ids), 1)]
    tests_alone, tests_side = sum(alone[i] for i in common), sum(side[i] for i in common)
    slowed = sorted(common, key=lambda i: side[i] - alone[i], reverse=True)[:top]
    return {"tests": len(common), "tests_alone_s": round(tests_alone, 1), "tests_side_by_side_s": round(tests_side, 1),
            "slowdown": round(tests_side / tests_alone, 2) if tests_alone else None,
            "singles_outside_tests_s": round(sum(s["seconds"] for s in singles) - tests_alone, 1),
            "workers_idle_s": round(workers * wall - sum(side.values()), 1),
            "by_engine_alone_vs_side_by_side_s": by_engine,
            "most_slowed_s": {i: [round(alone[i], 1), round(side[i], 1)] for i in slowed}}


def floor(singles: list[dict], workers: int, cores: int) -> dict:
    """The bound the single runs give: the walls packed longest first onto the workers, and the CPU they
    used spread over every core (ratios to the sum of the singles). Side by side the engines may use less
    CPU than alone (the eight-engine matrix used 12-15% less), so a matrix can go below it."""
    loads = [0.0] * workers
    for wall in sorted((s["seconds"] for s in singles), reverse=True):
        loads[loads.index(min(loads))] += wall
    total = sum(s["seconds"] for s in singles) or 1.0
    cpu = sum(s.get("cpu_busy_s", 0.0) for s in singles) / cores
    return {"packed_walls": round(max(loads) / total, 2), "cpu_over_cores": round(cpu / total, 2),
            "floor": round(max(max(loads), cpu) / total, 2)}


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
            single = singles[-1]
            print(f"alone   {engine:<24} {single['seconds']:>7.1f} s  {single['outcome']}  "
                  f"({single['cores_used']} cores busy on average, {single['iowait_s']} s waiting for the disk; "
                  f"CPU s: {single['cpu_by_process_s']})", flush=True)
        wholes = [run(engines, workers, Path(tmp) / f"matrix-{workers}") for workers in args.workers]
    total = sum(s["seconds"] for s in singles)
    print(f"sum of single-engine runs        {total:>7.1f} s")
    cores = os.cpu_count() or 1
    floors = {str(w["workers"]): floor(singles, w["workers"], cores) for w in wholes}
    breakdowns = {str(w["workers"]): breakdown(singles, w) for w in wholes}
    for whole in wholes:
        print(f"matrix, -n {whole['workers']} --dist loadgroup      {whole['seconds']:>7.1f} s  {whole['outcome']}  "
              f"({whole['seconds'] / total:.2f}x the sum; {whole['cores_used']} cores busy on average, "
              f"{whole['iowait_s']} s waiting for the disk; CPU s: {whole['cpu_by_process_s']}; "
              f"floor {floors[str(whole['workers'])]})")
        where = breakdowns[str(whole["workers"])]
        if where:
            print(f"  its tests: {where['tests_alone_s']} s alone, {where['tests_side_by_side_s']} s side by side "
                  f"({where['slowdown']}x); workers without a test {where['workers_idle_s']} s; by engine (alone, "
                  f"side by side): {where['by_engine_alone_vs_side_by_side_s']}; most slowed: {where['most_slowed_s']}")
    for run_ in [*singles, *wholes]:
        run_.pop("test_seconds", None)  # per test, in the breakdown only
    result = {"benchmark": "saveexport engine matrix vs single-engine runs", "version": 4, "machine": machine(),
              "singles": singles, "sum_of_singles_s": round(total, 1), "matrices": wholes,
              "ratio_to_sum": {str(w["workers"]): round(w["seconds"] / total, 2) for w in wholes},
              "floor_to_sum": floors, "breakdown": breakdowns}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in [*singles, *wholes]) else 1


if __name__ == "__main__":
    sys.exit(main())
