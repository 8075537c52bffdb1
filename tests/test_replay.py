"""benchmarks/replay.py: a call record (calls.py) becomes a shell script of docker CLI commands that
does the same engine work; checked on a record the test writes, and the script by `bash -n`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import replay  # noqa: E402


def _entry(method, path, params=None, body=None, **extra):
    return {"method": method, "path": path, "params": params, "body": body, **extra}


RECORD = [
    _entry("GET", "/_ping"),
    _entry("POST", "/containers/create", {"name": "run-pg"},
           {"Image": "pg:9.6", "Env": ["A=1"], "Labels": {"io.saveexport.run": "r1"}, "Cmd": ["postgres"]},
           made="abc123def4567890"),
    _entry("POST", "/containers/abc123def4567890/start", test="t.py::test_one"),
    _entry("SLEEP", "", seconds=0.25, test="t.py::test_one"),
    _entry("GET", "/images/get", {"names": ["pg:9.6", "mongo:3.4"]}, file="/tmp/run/save.tar"),
    _entry("GET", "/containers/abc123def456/export", file="/tmp/run/export.tar"),
    _entry("POST", "/images/load", file="/tmp/run/save.tar"),
    _entry("POST", "/images/create", {"fromSrc": "-", "repo": "x", "tag": "v1", "changes": ["CMD [\"sh\"]"]},
           file="/tmp/run/export.tar"),
    _entry("POST", "/build", {"t": "y:1", "labels": json.dumps({"io.saveexport.run": "r1"}), "forcerm": True},
           {"base64": base64.b64encode(b"not a real tar").decode()}),
    _entry("POST", "/images/create", {"fromSrc": "-", "repo": "tools", "tag": "1"}, file="/tmp/run/tools.tar"),
    _entry("DELETE", "/containers/abc123def4567890", {"v": True, "force": True}, test="t.py::test_two"),
    _entry("POST", "/volumes/prune"),
]


def test_a_record_becomes_the_same_calls_as_docker_commands(tmp_path):
    script = replay.replay(RECORD)
    text = "\n".join(script.lines)
    assert "id1=$(docker create --name run-pg --label io.saveexport.run=r1 -e A=1 pg:9.6 postgres" in text
    assert 'docker start "$id1"' in text and 'docker rm -f -v "$id1"' in text
    assert 'docker export -o "$here/archive-2-export.tar" "$id1"' in text  # a short id is the same container
    # the archive the run saved is the one it loaded: the same file of the script's own
    assert 'docker save -o "$here/archive-1-save.tar" pg:9.6 mongo:3.4' in text
    assert 'docker load -i "$here/archive-1-save.tar"' in text
    assert "docker import --change 'CMD [\"sh\"]' \"$here/archive-2-export.tar\" x:v1" in text
    assert "docker build -t y:1 --force-rm --label io.saveexport.run=r1 - <" in text
    # a file the run made without the engine is read where the run left it
    assert "docker import /tmp/run/tools.tar tools:1" in text
    assert script.skipped == {"POST /volumes/prune": 1}
    assert 'docker start "$id1" >/dev/null 2>&1 || true\nsleep 0.25\n' in text  # the suite's wait, as long
    cleanup = "\n".join(script.lines[script.lines.index(next(line for line in script.lines if "(end)" in line)):])
    assert "docker ps -a -q --filter label=io.saveexport.run=r1 | xargs -r docker rm -f -v" in cleanup
    assert "docker images -q --filter label=io.saveexport.run=r1 | xargs -r docker rmi -f" in cleanup
    assert "docker images -q --filter reference='saveexport-r1-*' | xargs -r docker rmi -f" in cleanup
    path = tmp_path / "replay.sh"
    path.write_text(text + "\n")
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True).returncode == 0


def test_the_command_says_what_it_did_not_replay(tmp_path):
    record = tmp_path / "calls-main.jsonl"
    record.write_text("".join(json.dumps(dict(e, seq=n)) + "\n" for n, e in enumerate(RECORD, 1)))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "replay.py"), str(record), "-o", str(tmp_path / "r.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "not replayed: POST /volumes/prune ×1" in proc.stderr
    assert (tmp_path / "r.sh").stat().st_mode & 0o111


def test_the_script_marks_where_each_test_starts_and_its_end(tmp_path):
    path, times = tmp_path / "replay.sh", tmp_path / "times"
    lines = [line for line in replay.replay(RECORD).lines if "docker" not in line and not line.startswith("sleep")]
    path.write_text("\n".join(lines) + "\n")
    ran = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "SAVEEXPORT_REPLAY_TIMES": str(times)})
    assert ran.returncode == 0, ran.stderr
    marks = [line.split(" ", 1) for line in times.read_text().splitlines()]
    assert [test for _, test in marks] == ["t.py::test_one", "t.py::test_two", "(end)"]
    assert all(float(at) > 1e9 for at, _ in marks)


FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$LOG"
case "$1" in
  create) echo c0ffee ;;
  import) echo sha256:feed ;;
  load) echo "Loaded image: x:v1"; echo "Loaded image ID: sha256:beef" ;;
esac
"""


def test_the_cleanup_removes_what_the_replay_made_under_ids_the_record_cannot_know(tmp_path):
    """An imported image has no label and the record's ids are not the replay's: the script notes the ids
    its imports, loads and creates print and removes them at its end (seen: a replay left its untagged
    imports on the engine)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    path = tmp_path / "replay.sh"
    path.write_text("\n".join(line for line in replay.replay(RECORD).lines if not line.startswith("sleep")) + "\n")
    ran = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)})
    assert ran.returncode == 0, ran.stderr
    calls = log.read_text().splitlines()
    removed = {word for call in calls if call.startswith(("rmi -f", "rm -f -v")) for word in call.split()[2:]}
    assert {"sha256:feed", "sha256:beef", "c0ffee"} <= removed, calls
    assert not any(call.startswith("rmi") and "x:v1" in call for call in calls)  # a loaded name is not the run's
