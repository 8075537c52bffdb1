"""benchmarks/replay.py: a call record (calls.py) becomes a shell script of docker CLI commands that
does the same engine work; checked on a record the test writes, and the script by `bash -n`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from saveexport import calls
from saveexport.daemons import PrivateDockerd
from saveexport.engines import Engine
from saveexport.moves import tools_root

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


SECOND = "unix:///run/saveexport/empty-1/docker.sock"
ENGINE_FACTS = {"name": "empty-1", "endpoint": SECOND, "socket": "/run/saveexport/empty-1/docker.sock", "netns": None,
                "dirs": ["/run/saveexport/empty-1", "/var/lib/saveexport/engines/empty-1/data", "/run/saveexport/exec-29"],
                "bridge": "sebr29", "bridge_address": "172.69.0.1/16", "nets": ["172.69.0.0/16", "10.229.0.0/16"],
                "rule_comment": "saveexport empty-1",
                "files": {"/var/lib/saveexport/engines/empty-1/daemon.json": "{}"},
                "containerd": {"argv": ["/usr/bin/containerd", "--config", "/run/saveexport/exec-29/containerd/c.toml"],
                               "address": "/run/saveexport/exec-29/containerd/containerd.sock",
                               "dirs": ["/var/lib/saveexport/engines/empty-1/data/containerd",
                                        "/run/saveexport/exec-29/containerd"]},
                "dockerd": {"argv": ["/usr/sbin/dockerd", "--host", SECOND], "env": {"PATH": "/usr/sbin:/usr/bin"}},
                "remove": ["/var/lib/saveexport/engines/empty-1", "/run/saveexport/exec-29", "/run/saveexport/empty-1"]}
MAIN = "unix:///var/run/docker.sock"
TWO_ENGINES = [
    _entry("GET", "/_ping", endpoint=MAIN), _entry("GET", "/version", endpoint=MAIN),
    _entry("ENGINE", "start", engine=ENGINE_FACTS, endpoint=SECOND, test="t.py::test_air"),
    _entry("CLI", "", command='env DOCKER_HOST=unix:///var/run/docker.sock compose -f "c.yaml" -p "p1" up --wait',
           test="t.py::test_air"),
    _entry("GET", "/containers/json", {"all": True, "filters": json.dumps({"label": ["com.docker.compose.project=p1"]})},
           found=["f00dfeedcafe0123456789"], endpoint=MAIN, test="t.py::test_air"),
    _entry("GET", "/containers/f00dfeedcafe0123456789/export", file="/tmp/run/db.tar", endpoint=MAIN, test="t.py::test_air"),
    _entry("POST", "/images/create", {"fromSrc": "-", "repo": "db", "tag": "1"}, file="/tmp/run/db.tar",
           endpoint=SECOND, test="t.py::test_air"),
    _entry("ENGINE", "stop", engine={"name": "empty-1", "endpoint": SECOND}, endpoint=SECOND, test="t.py::test_air"),
]


def test_a_second_engine_the_run_started_is_started_and_stopped_by_the_script_and_gets_its_calls(tmp_path):
    script = replay.replay(TWO_ENGINES)
    text = "\n".join(script.lines)
    assert script.main == MAIN and not script.skipped
    started = text.index("setsid /usr/bin/containerd"), text.index("setsid /usr/sbin/dockerd --host")
    assert started[0] < started[1] < text.index(f"docker -H {SECOND} version")  # it waits until it answers
    assert "ip link add sebr29 type bridge" in text and "cat > /var/lib/saveexport/engines/empty-1/daemon.json" in text
    assert "iptables -w -I FORWARD -s 10.229.0.0/16 -d 10.229.0.0/16 -m comment --comment 'saveexport empty-1'" in text
    # compose as the suite ran it; the container it made found by the listing's filter, then exported
    assert 'compose -f "c.yaml" -p "p1" up --wait >/dev/null 2>&1 || true' in text
    assert ("id1=$(docker ps -q --no-trunc -a --filter label=com.docker.compose.project=p1 2>/dev/null | head -n 1)"
            in text)
    assert 'docker export -o "$here/archive-1-db.tar" "$id1"' in text
    # the import went to the second engine, before the engine's stop
    imported = text.index(f'docker -H {SECOND} import "$here/archive-1-db.tar" db:1')
    assert imported < text.rindex("\nstop_engine1")
    assert "stop_engine1() {" in text and "rm -rf /var/lib/saveexport/engines/empty-1" in text
    path = tmp_path / "replay.sh"
    path.write_text(text + "\n")
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True).returncode == 0


LOGGING_DOCKER = """#!/bin/sh
"$REAL_DOCKER" "$@"
status=$?
echo "$status $*" >> "$LOG"
exit $status
"""


def test_the_replay_of_a_real_private_engine_starts_it_aims_calls_there_and_leaves_nothing(tmp_path):
    """Record a real private dockerd's start, an import into it and its stop; the script then does the same on
    the machine, and afterwards no process, mount, bridge or FORWARD rule of it remains."""
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.fail("this test starts a private dockerd: run it as root where dockerd is (scripts/engine up)",
                    pytrace=False)
    record = tmp_path / "record"
    root_tar = tools_root(tmp_path / "tools.tar", ("/bin/sh", "/bin/cat"))
    calls.start(record)
    daemon = PrivateDockerd(name=f"se-replay-{os.getpid()}", dockerd=shutil.which("dockerd"), index=18)
    try:
        engine = Engine.connect(daemon.start(), timeout=120)
        engine.api.import_image_from_file(str(root_tar), repository="se-replay-tools", tag="1")
        engine.close()
    finally:
        daemon.stop()
        calls.stop()
    entries = calls.read(sorted(record.glob("calls-*.jsonl")))
    assert [e["path"] for e in entries if e["method"] == "ENGINE"] == ["start", "stop"]
    script = replay.replay(entries)
    path, log, bin_dir = tmp_path / "replay.sh", tmp_path / "docker.log", tmp_path / "bin"
    path.write_text("\n".join(script.lines) + "\n")
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(LOGGING_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    ran = subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG=str(log),
                                  REAL_DOCKER=shutil.which("docker")))
    assert ran.returncode == 0, ran.stderr
    done = log.read_text().splitlines()
    assert any(line.startswith(f"0 -H {daemon.endpoint} import ") and line.endswith(" se-replay-tools:1")
               for line in done), done
    assert not any(daemon.name in line or "exec-18" in line for line in Path("/proc/mounts").read_text().splitlines())
    assert not Path(f"/sys/class/net/{daemon.bridge}").exists()
    assert daemon.name not in subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                                             text=True).stdout
    assert not Path(daemon.endpoint.removeprefix("unix://")).exists()
    leftover = subprocess.run(["pgrep", "-f", "--", f"/run/saveexport/exec-{daemon.index}([/ :,=]|$)"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout


def test_a_replayed_engine_that_ignores_sigterm_is_killed_within_the_bound(tmp_path):
    """The script's stop of an engine sends SIGTERM and, as PrivateDockerd.stop does, SIGKILL after its
    bound: a daemon that ignores SIGTERM cannot hang the benchmark. Checked on a real process that does."""
    script = tmp_path / "stop.sh"
    script.write_text("\n".join(replay.Script().lines + [
        "bash -c 'trap \"\" TERM; while :; do sleep 0.1; done' & stubborn=$!",
        "sleep 0.3",  # its trap is set
        "end_within \"$stubborn\" 1",
        "kill -0 \"$stubborn\" 2>/dev/null && echo alive || echo gone",
        "bash -c 'sleep 30' & polite=$!",
        "end_within \"$polite\" 5",
        "kill -0 \"$polite\" 2>/dev/null && echo alive || echo gone", ""]))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gone", "gone"]
