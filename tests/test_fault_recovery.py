"""Faults the run must come back from: a build killed halfway, a cached image removed, two runs at once on
one machine, and an engine restarted under a running suite. Each on a real private engine.

The cache cases use a small recipe of their own (a root of the host's own sh, sleep and cat, made here),
so the shared stand-ins are never invalidated.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import docker.errors
import pytest

from saveexport.daemons import PrivateDockerd
from saveexport.engines import Engine
from saveexport.isolation import LABEL_RUN
from saveexport.moves import tools_root
from saveexport.standin import build, cached

TOOLS = ("/bin/sh", "/bin/sleep", "/bin/cat", "/bin/touch")
CACHE_REF = "saveexport-cache/recovery-test:1"


def _dockerd() -> str:
    return shutil.which("dockerd") or "/usr/sbin/dockerd"


def _wait_for(condition, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {limit_s} s")


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    """A private dockerd with the tools root imported as the base the test recipe builds on."""
    if os.geteuid() != 0:
        pytest.fail("these tests start private engines: run them as root", pytrace=False)
    tmp = tmp_path_factory.mktemp("recovery")
    daemon = PrivateDockerd(name=f"se-recovery-{os.getpid()}", dockerd=_dockerd(), index=12)
    engine = Engine.connect(daemon.start(), timeout=120)
    try:
        engine.api.import_image_from_file(str(tools_root(tmp / "tools.tar", TOOLS)), repository="se-recovery-tools",
                                          tag="1")
        context = tmp / "context"
        context.mkdir()
        # the slow step is where a run gets killed (step 3); its last act marks the image whole
        (context / "Dockerfile").write_text('FROM se-recovery-tools:1\nARG SLOW=0\n'
                                            'RUN sleep "$SLOW" && touch /whole\nCMD ["cat", "/whole"]\n')
        yield daemon, engine, context, tmp
    finally:
        engine.close()
        daemon.stop()


_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from saveexport.engines import Engine
    from saveexport.standin import build, cached

    endpoint, context, cache_dir, slow = sys.argv[1:5]
    engine = Engine.connect(endpoint)
    image_id, built = cached(engine, {ref!r}, Path(cache_dir),
                             lambda: build(engine, context, {ref!r}, {{"SLOW": slow}}, "test", Path(cache_dir)))
    print(json.dumps({{"id": image_id, "built": built}}), flush=True)
""").format(ref=CACHE_REF)


def _child(endpoint: str, context: Path, cache_dir: Path, slow: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, endpoint, str(context), str(cache_dir), str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _has_whole(engine: Engine, ref: str) -> bool:
    """Whether the image has /whole, the mark its last build step leaves (exit status of cat)."""
    container = engine.client.containers.create(ref)
    try:
        container.start()
        return container.wait(timeout=60)["StatusCode"] == 0
    finally:
        container.remove(force=True)


def _no_cache_image(engine: Engine) -> bool:
    try:
        engine.api.inspect_image(CACHE_REF)
    except docker.errors.ImageNotFound:
        return True
    return False


def test_a_build_killed_halfway_leaves_nothing_a_later_run_takes_as_whole(builder):
    daemon, engine, context, tmp = builder
    cache_dir = tmp / "cache-killed"
    child = _child(daemon.endpoint, context, cache_dir, slow=120)
    log = cache_dir / f"build-{CACHE_REF.replace('/', '_').replace(':', '_')}.log"
    _wait_for(lambda: log.exists() and "Step 3/" in log.read_text() and "Running in" in log.read_text(), 60,
              "the slow RUN step")
    child.kill()  # the run dies in the middle of the build
    child.communicate()
    assert _no_cache_image(engine), "a killed build left an image under the cache's tag"
    started = time.monotonic()
    image_id, built = cached(engine, CACHE_REF, cache_dir,
                             lambda: build(engine, str(context), CACHE_REF, {"SLOW": "0"}, "test", cache_dir))
    assert built, "the later run took something the killed build left as the cached image"
    assert _has_whole(engine, CACHE_REF) and engine.api.inspect_image(CACHE_REF)["Id"] == image_id
    print(f"\nbuild killed halfway: the next run built it again in {time.monotonic() - started:.1f} s")


def test_a_cached_image_removed_between_runs_is_made_again_without_asking(builder):
    daemon, engine, context, tmp = builder
    cache_dir = tmp / "cache-removed"

    def make():
        return build(engine, str(context), CACHE_REF, {"SLOW": "0"}, "test", cache_dir)

    first, _ = cached(engine, CACHE_REF, cache_dir, make)
    again, built = cached(engine, CACHE_REF, cache_dir, make)
    assert (again, built) == (first, False)  # cached: not made twice
    engine.api.remove_image(CACHE_REF, force=True)  # removed between runs (a prune, a user)
    third, built = cached(engine, CACHE_REF, cache_dir, make)
    assert built and _has_whole(engine, CACHE_REF)


def test_two_runs_at_once_build_once_and_both_have_the_image(builder):
    daemon, engine, context, tmp = builder
    cache_dir = tmp / "cache-two"
    try:
        engine.api.remove_image(CACHE_REF, force=True)
    except docker.errors.ImageNotFound:
        pass
    children = [_child(daemon.endpoint, context, cache_dir, slow=3) for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["built"] for r in results) == [False, True], results  # one built, the other waited and found it
    assert results[0]["id"] == results[1]["id"] == engine.api.inspect_image(CACHE_REF)["Id"]


def test_killed_fetches_leave_no_cached_build_that_looks_whole(tmp_path):
    """A download or unpack killed halfway leaves only `.partial-*` entries, which the next fetch removes."""
    from saveexport.provision import PARTIAL, drop_stale, write_atomically

    (tmp_path / f"{PARTIAL}123").mkdir()
    (tmp_path / f"{PARTIAL}123" / "docker.io_1_amd64.deb").write_bytes(b"half")
    (tmp_path / f"{PARTIAL}base-9").mkdir()
    drop_stale(tmp_path, "base-")
    assert (tmp_path / f"{PARTIAL}123").exists() and not (tmp_path / f"{PARTIAL}base-9").exists()
    drop_stale(tmp_path)
    assert not list(tmp_path.iterdir())
    write_atomically(tmp_path / "build.json", '{"version": "1"}')
    assert [p.name for p in tmp_path.iterdir()] == ["build.json"]


# -- two runs at once: private engines of one name and slot -------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from saveexport.daemons import PrivateDockerd
    daemon = PrivateDockerd(name=sys.argv[1], dockerd=sys.argv[2], index=int(sys.argv[3]))
    print(daemon.start(), daemon.index, daemon.name, flush=True)
    time.sleep(600)
""")


def test_two_runs_start_engines_of_one_name_and_slot_and_neither_harms_the_other():
    name = f"se-twice-{os.getpid()}"
    first = PrivateDockerd(name=name, dockerd=_dockerd(), index=13)
    other = None
    try:
        first.start()
        other = subprocess.Popen([sys.executable, "-c", _HOLDER, name, _dockerd(), "13"], stdout=subprocess.PIPE,
                                 text=True)
        endpoint, index, other_name = other.stdout.readline().split()
        assert (endpoint, int(index), other_name) != (first.endpoint, 13, name)
        assert int(index) != 13 and other_name != name  # a slot and name of its own
        a, b = Engine.connect(first.endpoint), Engine.connect(endpoint)
        try:
            assert a.client.ping() and b.client.ping() and a.pid != b.pid
        finally:
            a.close()
            b.close()
        other.kill()  # that run dies; its engine is an orphan now, and its claims died with it
        other.communicate()
        orphan = Engine.connect(endpoint)
        orphan_pid = orphan.pid
        orphan.close()
        third = PrivateDockerd(name=name, dockerd=_dockerd(), index=13)
        try:
            third.start()  # takes the dead run's name and slot, and removes its orphan first
            assert (third.name, third.index) == (other_name, int(index))
            _wait_for(lambda: not Path(f"/proc/{orphan_pid}").exists(), 20, "the orphan's end")
            check = Engine.connect(first.endpoint)
            assert check.client.ping()  # the first run's engine was never touched
            check.close()
        finally:
            third.stop()
    finally:
        if other is not None and other.poll() is None:
            other.kill()
            other.communicate()
        first.stop()


# -- an engine restarted under a running suite -------------------------------------------------------------

_RESTART_TESTS = """
    import os, time
    from pathlib import Path

    SIGNALS = Path(os.environ["RECOVERY_SIGNALS"])

    def _ask(what):
        (SIGNALS / what).touch()
        deadline = time.monotonic() + 120
        while not (SIGNALS / (what + ".done")).exists():
            assert time.monotonic() < deadline, what + " was not done"
            time.sleep(0.1)

    def test_1_makes_things(container_engine, run_scope, engine_ops, tmp_path):
        root = tmp_path / "root.tar"
        import tarfile, io
        with tarfile.open(root, "w") as tar:
            info = tarfile.TarInfo("hello"); info.size = 3; tar.addfile(info, io.BytesIO(b"hi\\n"))
        assert engine_ops.import_(root, run_scope.ref("made", "1")).ok
        _ask("fault")
        second = engine_ops.import_(root, run_scope.ref("made", "2"))
        (SIGNALS / "outcome").write_text(f"{second.duration_s} {second.error_type}")
        _ask("restart")  # before the next test (the plugin orders tests by engine: no test in between)
        assert second.ok

    def test_3_after(container_engine, run_scope, engine_ops, tmp_path):
        root = tmp_path / "root.tar"
        import tarfile, io
        with tarfile.open(root, "w") as tar:
            info = tarfile.TarInfo("hello"); info.size = 3; tar.addfile(info, io.BytesIO(b"hi\\n"))
        assert engine_ops.import_(root, run_scope.ref("made", "3")).ok
"""


def _serve_signals(signals: Path, daemon: PrivateDockerd, mode: str, done: list) -> None:
    """What a service manager does while the run goes on. `fault`: kill the engine's processes (a crash,
    after which the manager ends what was left of its group) or restart it cleanly (SIGTERM, start again);
    `restart`: start a killed engine again, unless it stays down."""
    from saveexport.streams import _tree

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not done:
        if (signals / "fault").exists() and not (signals / "fault.done").exists():
            if mode == "restarted-cleanly":
                daemon.restart()
            else:
                # the whole engine: the daemon, its containerd (its own, beside it) and what they run
                tree = _tree(daemon.process.pid) + _tree(daemon.containerd.process.pid)
                for pid in tree:
                    os.kill(pid, signal.SIGKILL)
                daemon.process.wait()
                daemon.containerd.process.wait()
                # as a manager waits for the group to empty before it starts the engine again
                _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in tree), 30, "the group's end")
            (signals / "fault.done").touch()
        if (signals / "restart").exists() and not (signals / "restart.done").exists():
            if mode == "killed-then-restarted":
                daemon.restart(down=False)
            (signals / "restart.done").touch()
        time.sleep(0.1)


def _has_docker0() -> bool:
    return subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False).returncode == 0


def _user_things(engine: Engine, tmp: Path) -> tuple[str, str]:
    """An image and a container of the user's own, that nothing of the suite may touch."""
    root = tmp / "user-root.tar"
    with tarfile.open(root, "w") as tar:
        tar.add(os.path.realpath("/bin/true"), arcname="true")
    engine.api.import_image_from_file(str(root), repository="users-own", tag="precious")
    container = engine.api.create_container("users-own:precious", command=["/true"], name="users-own-container")
    return engine.api.inspect_image("users-own:precious")["Id"], container["Id"]


def _ours(engine: Engine) -> list[str]:
    """What any run of the suite made: labelled, or tagged in a run's namespace (imports carry no label)."""
    from saveexport.cli import RUN_TAG

    tagged = [i["Id"] for i in engine.api.images() if any(RUN_TAG.match(t) for t in i.get("RepoTags") or ())]
    return sorted(set(tagged + [i["Id"] for i in engine.api.images(filters={"label": LABEL_RUN})]
                      + [c["Id"] for c in engine.api.containers(all=True, filters={"label": LABEL_RUN})]))


@pytest.mark.parametrize("mode", ["restarted-cleanly", "killed-then-restarted", "stays-down"])
def test_an_engine_restarted_or_killed_under_a_running_suite(pytester, tmp_path, mode):
    """Restarted during test 1 (cleanly, or killed and started again before test 3, or killed for good):
    the run carries on with it when it answers again; otherwise its tests fail with one line. Either way
    nothing of the run stays once it answers, after the run's own cleanup or `saveexport gc`, and the
    user's image and container are untouched."""
    import threading

    had_docker0 = _has_docker0()
    daemon = PrivateDockerd(name=f"se-restart-{os.getpid()}", dockerd=_dockerd(), index=13)
    engine = Engine.connect(daemon.start())
    done: list = []
    try:
        users = _user_things(engine, tmp_path)
        signals = tmp_path / "signals"
        signals.mkdir()
        server = threading.Thread(target=_serve_signals, args=(signals, daemon, mode, done), daemon=True)
        server.start()
        pytester.makepyfile(test_restart=_RESTART_TESTS)
        report = tmp_path / "report"
        env_before = os.environ.get("RECOVERY_SIGNALS")
        os.environ["RECOVERY_SIGNALS"] = str(signals)
        try:
            result = pytester.runpytest_subprocess("-p", "no:randomly", f"--saveexport-engine={daemon.endpoint}",
                                                   f"--saveexport-report-dir={report}", timeout=300)
        finally:
            os.environ.pop("RECOVERY_SIGNALS") if env_before is None else os.environ.update(
                RECOVERY_SIGNALS=env_before)
        done.append(True)
        server.join(10)
        outcomes = result.parseoutcomes()
        text = result.stdout.str()
        seconds, error_type = (signals / "outcome").read_text().split()
        print(f"\n{mode}: the call after the fault took {float(seconds):.2f} s ({error_type})")
        assert float(seconds) < 30
        faults = json.loads((report / "saveexport-evidence.json").read_text())["faults"]
        kinds = sorted(f["kind"] for f in faults)
        if mode == "restarted-cleanly":  # nothing failed: the client's next call reached the new process
            assert outcomes.get("passed") == 2, text[-3000:]
            assert kinds == [], faults
        elif mode == "killed-then-restarted":
            assert outcomes.get("passed") == 1 and outcomes.get("failed") == 1, text[-3000:]
            assert kinds == ["died", "recovered"], faults
            assert "answers again" in next(f["line"] for f in faults if f["kind"] == "recovered")
        else:
            assert outcomes.get("failed") == 1 and outcomes.get("errors") == 1 and "passed" not in outcomes, \
                text[-3000:]
            assert kinds == ["died"], faults
            result.stdout.fnmatch_lines(["*the engine * died (its process * is gone)*its remaining tests fail at once*"])
            daemon.restart(down=False)  # it answers again after the run
        engine.close()
        engine = Engine.connect(daemon.endpoint)
        if mode == "stays-down":
            assert _ours(engine), "the run's leftovers were expected on the engine that stayed down"
            gc = subprocess.run([sys.executable, "-m", "saveexport.cli", "gc", "--docker-host", daemon.endpoint],
                                capture_output=True, text=True, timeout=120, check=False)
            assert gc.returncode == 0, gc.stdout + gc.stderr
        assert _ours(engine) == []
        image_id, container_id = users
        assert engine.api.inspect_image("users-own:precious")["Id"] == image_id
        assert engine.api.inspect_container(container_id)["Name"] == "/users-own-container"
        assert _has_docker0() == had_docker0, "restarting a private engine took the machine's docker0 away"
    finally:
        done.append(True)
        engine.close()
        daemon.stop()
