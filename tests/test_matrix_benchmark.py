"""benchmarks/matrix_benchmark.py's accounting: the floor no schedule of the single runs can beat, and the
machine's CPU time by process, read from the real /proc while a process of the test's own burns CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import matrix_benchmark as bench  # noqa: E402


def test_the_floor_is_the_longest_packing_of_walls_or_the_cpu_over_the_cores():
    singles = [{"seconds": 400.0, "cpu_busy_s": 500.0}, {"seconds": 300.0, "cpu_busy_s": 450.0},
               {"seconds": 300.0, "cpu_busy_s": 250.0}]
    # walls longest first on 2 workers: 400 | 300 + 300 -> 600 of 1000; CPU 1200 s over 2 cores -> 600 too
    assert bench.floor(singles, 2, 2) == {"packed_walls": 0.6, "cpu_over_cores": 0.6, "floor": 0.6}
    assert bench.floor(singles, 3, 2) == {"packed_walls": 0.4, "cpu_over_cores": 0.6, "floor": 0.6}
    idle = [dict(s, cpu_busy_s=10.0) for s in singles]
    assert bench.floor(idle, 3, 2)["floor"] == 0.4  # waiting runs: only the longest bounds it


def test_cpu_by_process_counts_what_a_process_burns_while_sampled():
    busy = bench.busy_seconds()
    burn = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass\n"
    with bench.CpuByProcess(every_s=0.1) as sampled:
        subprocess.run([sys.executable, "-c", burn, "saveexport-burner"], check=True)
    assert bench.busy_seconds() - busy >= 1.4  # the machine was busy at least as long as the burner
    name = Path(sys.executable).name[:15]  # /proc's comm: the first 15 bytes of the program's name
    assert 1.0 <= sampled.by_name[name] <= 2.5, dict(sampled.by_name)


def test_the_breakdown_splits_the_matrix_into_slower_tests_and_idle_workers(tmp_path):
    evidence = tmp_path / "saveexport-evidence.json"
    evidence.write_text('{"tests": {"t.py::a[e1]": {"duration_s": 10.0}, "t.py::b[e1]": {"duration_s": 5}}}')
    assert bench.test_seconds(evidence) == {"t.py::a[e1]": 10.0, "t.py::b[e1]": 5.0}
    assert bench.test_seconds(tmp_path / "missing.json") == {}
    singles = [{"engines": ["e1"], "seconds": 20.0, "test_seconds": {"a[e1]": 10.0, "b[e1]": 5.0}},
               {"engines": ["e2"], "seconds": 12.0, "test_seconds": {"a[e2]": 10.0}}]
    whole = {"workers": 2, "seconds": 20.0, "test_seconds": {"a[e1]": 12.0, "b[e1]": 6.0, "a[e2]": 15.0}}
    where = bench.breakdown(singles, whole, top=2)
    assert where["tests"] == 3 and where["tests_alone_s"] == 25.0 and where["tests_side_by_side_s"] == 33.0
    assert where["slowdown"] == 1.32
    assert where["singles_outside_tests_s"] == 7.0  # 32 s of walls, 25 of them in tests
    assert where["workers_idle_s"] == 7.0  # 2 workers x 20 s, 33 of them in tests
    assert where["by_engine_alone_vs_side_by_side_s"] == {"e1": [15.0, 18.0], "e2": [10.0, 15.0]}
    assert where["most_slowed_s"] == {"a[e2]": [10.0, 15.0], "a[e1]": [10.0, 12.0]}
    assert bench.breakdown(singles, {"workers": 2, "seconds": 1.0}) == {}
