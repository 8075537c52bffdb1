"""The engine matrix: what --saveexport-engine accepts, test ids per engine, and private daemons that
come and go without touching the machine's own engine."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from saveexport import matrix, scheduling
from saveexport.daemons import PrivateDockerd
from saveexport.host_state import bridges_in as _bridges_in
from saveexport.engines import Engine
from saveexport.errors import EngineUnavailable, UsageError


@pytest.fixture
def fake_dockerd(tmp_path):
    """A stand-in binary that answers --version like dockerd (enough for parsing and test ids)."""
    path = tmp_path / "bundle" / "dockerd"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho 'Docker version 99.1.0, build abcdef'\n")
    path.chmod(0o755)
    return path


def test_engine_values_parse(fake_dockerd):
    assert matrix.parse("default", "unix:///x.sock").endpoint == "unix:///x.sock"
    assert matrix.parse("tcp://10.0.0.2:2375").kind == "endpoint"
    assert matrix.parse("podman").kind == "podman"
    spec = matrix.parse(f"dockerd:{fake_dockerd.parent}+containerd")
    assert (spec.kind, spec.id, spec.containerd_store) == ("dockerd", "docker-99.1.0-containerd", True)
    assert matrix.parse(f"dockerd:{fake_dockerd}").id == "docker-99.1.0-overlay2"
    raised = matrix.parse(f"dockerd:{fake_dockerd}+min-api=1.44")
    assert (raised.id, raised.min_api, raised.variant) == ("docker-99.1.0-overlay2-min-api-1.44", "1.44",
                                                           "min-api-1.44")
    both = matrix.parse(f"dockerd:{fake_dockerd}+containerd+min-api=1.44")
    assert both.id == matrix.parse(f"dockerd:{fake_dockerd}+min-api=1.44+containerd").id == \
        "docker-99.1.0-containerd-min-api-1.44"
    assert both.containerd_store and both.to_dict()["min_api"] == "1.44"


def test_a_raised_floor_is_another_engine_than_its_build(pytester, fake_dockerd):
    """Its id, paths and label differ from the plain build's, so both may run in one matrix."""
    plain, raised = matrix.parse(f"dockerd:{fake_dockerd}"), matrix.parse(f"dockerd:{fake_dockerd}+min-api=1.44")
    assert plain.id != raised.id
    a = PrivateDockerd(name=plain.id, dockerd=str(fake_dockerd), index=1)
    b = PrivateDockerd(name=raised.id, dockerd=str(fake_dockerd), index=2, min_api="1.44")
    assert {a.socket, a.data_root, a.exec_root, a.bridge}.isdisjoint({b.socket, b.data_root, b.exec_root, b.bridge})
    pytester.makepyfile("def test_x(saveexport_engine_spec):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", f"--saveexport-engine=dockerd:{fake_dockerd}",
                                f"--saveexport-engine=dockerd:{fake_dockerd}+min-api=1.44")
    result.stdout.fnmatch_lines(["*test_x[[]docker-99.1.0-overlay2[]]", "*test_x[[]docker-99.1.0-overlay2-min-api-1.44[]]"])


def test_the_label_of_a_raised_floor_names_it():
    from saveexport.engines import EngineFacts

    facts = EngineFacts(kind="docker", version="28.5.2+dfsg1", api_version="1.51", min_api_version="1.44", os="linux",
                        arch="amd64", kernel="6", storage_driver="overlay2", image_store="graphdriver", endpoint="x",
                        variant="min-api-1.44")
    assert facts.label == "docker-28.5.2-overlay2-min-api-1.44"
    assert facts.to_dict()["label"] == facts.label


@pytest.mark.parametrize("value, words", [("docker:hamm", "unknown Debian suite"), ("dockerd:/nonexistent",
                                          "not an executable dockerd"), ("kubernetes", "is not an engine"),
                                          ("docker:sid+min-api=new", "takes an API version")])
def test_bad_engine_values_say_what_to_use(value, words):
    with pytest.raises(UsageError, match=words):
        matrix.parse(value)


def test_every_engine_gets_its_own_test_ids(pytester, fake_dockerd):
    pytester.makepyfile("def test_x(saveexport_engine_spec):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", f"--saveexport-engine=dockerd:{fake_dockerd}",
                                f"--saveexport-engine=dockerd:{fake_dockerd}+containerd")
    result.stdout.fnmatch_lines(["*test_x[[]docker-99.1.0-overlay2[]]", "*test_x[[]docker-99.1.0-containerd[]]"])


def test_with_loadgroup_each_engine_runs_in_one_worker(pytester, fake_dockerd):
    """Two workers never share an engine: the second would stop the first one's private daemon."""
    pytest.importorskip("xdist")
    log = pytester.path / "workers.log"
    pytester.makepyfile(f"""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_x(saveexport_engine_spec, n):
            with open({str(log)!r}, "a") as out:
                out.write(saveexport_engine_spec.id + " " + os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    """)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:randomly",
                                           f"--saveexport-engine=dockerd:{fake_dockerd}",
                                           f"--saveexport-engine=dockerd:{fake_dockerd}+containerd")
    result.assert_outcomes(passed=16)
    workers: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        engine, worker = line.split()
        workers.setdefault(engine, set()).add(worker)
    assert sorted(workers) == ["docker-99.1.0-containerd", "docker-99.1.0-overlay2"]
    assert all(len(used) == 1 for used in workers.values()), workers


def test_a_private_engine_in_several_workers_is_a_usage_error(pytester, fake_dockerd):
    pytest.importorskip("xdist")
    pytester.makepyfile("def test_x(saveexport_engine_spec):\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", f"--saveexport-engine=dockerd:{fake_dockerd}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dist load would run docker-99.1.0-overlay2 in several xdist workers*"
                                 "--dist loadgroup*"])


@pytest.mark.parametrize("nodeid, scope", [
    ("e/test_a.py::test_x[docker-26.1.5-overlay2]", "saveexport-docker-26.1.5-overlay2"),
    ("e/test_a.py::test_x[save-load-docker-28.5.2-containerd]", "saveexport-docker-28.5.2-containerd"),
    ("e/test_a.py::test_x[docker-28.5.2-overlay2-7]", "saveexport-docker-28.5.2-overlay2"),
    ("e/test_a.py::test_x[podman-a-b]", "saveexport-podman"),
    ("e/test_a.py::test_x[podmanx]", "e/test_a.py::test_x[podmanx]"),  # a whole token, not a prefix
    ("t/test_b.py::test_unit", "t/test_b.py::test_unit"),
    ("t/test_b.py::test_unit[1]@mine", "mine"),
])
def test_the_work_unit_is_the_engine_named_in_the_test_id(nodeid, scope):
    engines = ["docker-28.5.2-overlay2", "docker-28.5.2-containerd", "docker-26.1.5-overlay2", "podman"]
    assert scheduling.engine_scope(nodeid, engines) == scope


def test_the_same_engine_twice_is_a_usage_error(pytester, fake_dockerd):
    result = pytester.runpytest(f"--saveexport-engine=dockerd:{fake_dockerd}", f"--saveexport-engine=dockerd:{fake_dockerd}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names the same engine twice*"])


def test_a_private_daemon_comes_and_goes_without_touching_the_machines_engine(tmp_path):
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    daemon = PrivateDockerd(name="selftest", dockerd=dockerd, index=9)
    main = Engine.connect()
    forward = ["iptables", "-w", "-S", "FORWARD"]
    try:
        engine = Engine.connect(daemon.start())
        assert engine.api.images() == []  # a fresh engine of its own
        assert engine.facts.endpoint == daemon.endpoint
        # a network of its own gets a bridge from the daemon's own pool, and its containers may talk
        engine.api.create_network("selftest-net")
        assert len(_bridges_in(daemon.pool)) == 1
        if shutil.which("iptables"):
            assert f"saveexport {daemon.name}" in subprocess.run(forward, capture_output=True, text=True).stdout
        # the network is left on purpose: stopping the daemon must remove its bridge
        engine.close()
    finally:
        daemon.stop()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "sebr9" not in links and "docker0" in links
    assert _bridges_in(daemon.pool) == []
    if shutil.which("iptables"):  # its own rule gone (another run's engines may have theirs meanwhile)
        assert f"saveexport {daemon.name}" not in subprocess.run(forward, capture_output=True, text=True).stdout
    assert not daemon.data_root.exists() and not daemon.run_dir.exists() and not daemon.log.exists()
    assert not daemon.exec_root.exists()
    assert main.api.ping()  # the machine's engine still answers, its docker0 intact
    main.close()


def test_an_engine_with_docker_29s_api_floor_is_reached_by_every_path(tmp_path):
    """Docker 28.5.2 started with DOCKER_MIN_API_VERSION=1.44 refuses old clients as Docker 29 does; the
    plugin, `saveexport engine`, scripts/engine and Compose all reach it."""
    import json
    import os
    import socket
    import sys
    from pathlib import Path

    from saveexport.compose import find_compose
    from saveexport.provision import fetch_suite

    root = Path(__file__).resolve().parents[1]
    spec = matrix.parse("docker:sid+min-api=1.44")
    assert spec.id.endswith("-overlay2-min-api-1.44") and spec.min_api == "1.44"
    daemon = PrivateDockerd(name=f"selftest-{spec.id}", dockerd=fetch_suite("sid").dockerd, index=10,
                            min_api=spec.min_api)
    try:
        endpoint = daemon.start()
        # what an old pinned client gets: HTTP 400 (the words go to the assertion message, not matched)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(daemon.socket))
            sock.sendall(b"GET /v1.24/version HTTP/1.0\r\n\r\n")
            answer = sock.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.0 400"), answer
        engine = Engine.connect(endpoint)
        engine.spec = spec
        try:
            facts = engine.facts
            assert facts.min_api_version == "1.44" and facts.label == spec.id
            assert tuple(map(int, facts.client_api_version.split("."))) >= (1, 44)
            assert engine.api.images() == [] and engine.api.containers(all=True) == []
        finally:
            engine.close()
        cli = subprocess.run([sys.executable, "-m", "saveexport.cli", "engine", "--docker-host", endpoint],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        env = dict(os.environ, DOCKER_HOST=endpoint, DOCKER_API_VERSION="1.24")  # a pinned version is dropped
        script = subprocess.run(["bash", str(root / "scripts" / "engine"), "status"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert script.returncode == 0 and "API 1.44 to" in script.stdout, script.stdout + script.stderr
        compose = find_compose()
        listed = subprocess.run([*compose.argv_for(endpoint), "ls", "--all", "--format", "json"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, f"Compose {compose.version}: {listed.stderr.strip()}"
        assert json.loads(listed.stdout or "[]") == []
    finally:
        daemon.stop()
    assert not daemon.data_root.exists() and not daemon.run_dir.exists() and not daemon.exec_root.exists()


def test_a_build_that_ignores_the_raised_floor_is_refused_in_one_line(pytester):
    """dockerd 20.10 has no DOCKER_MIN_API_VERSION: its id would claim a floor it does not have."""
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    pytester.makepyfile("def test_x(container_engine):\n    pass\n")
    result = pytester.runpytest(f"--saveexport-engine=dockerd:{dockerd}+min-api=1.44")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the daemon's oldest API is *, not 1.44: this build ignores "
                                 "DOCKER_MIN_API_VERSION*"])


def test_docker_on_another_suites_containerd_is_an_engine_of_its_own():
    """Docker 28.5.2's containerd image store on sid's containerd 2.1.9 (Docker 29 ships containerd 2):
    an id that cannot collide with the store on the host's containerd, and the containerd it names is
    the one that serves it; stopping it leaves no containerd of it running."""
    on_host = matrix.parse("docker:sid+containerd")
    spec = matrix.parse("docker:sid+containerd+containerd-from=sid")
    assert spec.unavailable is None, spec.unavailable
    assert spec.id == f"docker-28.5.2-containerd-{spec.containerd.version}" != on_host.id
    assert spec.containerd.version.split(".")[0] == "2"
    assert matrix.parse("docker:sid+containerd-from=sid").id == f"docker-28.5.2-overlay2-containerd-{spec.containerd.version}"
    daemon = PrivateDockerd(name=f"selftest-{spec.id}", dockerd=spec.build.dockerd, index=14,
                            containerd_store=True, containerd_bin=spec.containerd.bin)
    try:
        engine = Engine.connect(daemon.start())
        engine.spec = spec
        facts = engine.facts
        assert facts.image_store == "containerd"
        assert facts.components["containerd"].startswith(spec.containerd.version)
        assert facts.label == spec.id
        engine.close()
    finally:
        daemon.stop()
    running = subprocess.run(["pgrep", "-f", str(daemon.exec_root)], capture_output=True, text=True).stdout
    assert running == "" and not daemon.data_root.exists()


def test_an_unknown_suite_for_containerd_is_one_line():
    with pytest.raises(UsageError, match=r"\+containerd-from=hamm: unknown Debian suite"):
        matrix.parse("docker:sid+containerd+containerd-from=hamm")


def test_an_engine_on_another_containerd_than_asked_is_refused_in_one_line():
    """Where a system containerd runs, dockerd joins it: the engine would not be the one its id names."""
    spec = matrix.parse("docker:sid+containerd+containerd-from=sid")
    matrix.check_started(spec, "1.24", {"containerd": f"{spec.containerd.version}+unknown"})  # the one asked for
    with pytest.raises(EngineUnavailable, match=r"runs on containerd 1\.6\.20~ds1, not 2\.") as raised:
        matrix.check_started(spec, "1.24", {"containerd": "1.6.20~ds1"})
    assert "\n" not in str(raised.value)
