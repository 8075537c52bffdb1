"""The engine matrix: what --saveexport-engine accepts, test ids per engine, and private daemons that
come and go without touching the machine's own engine."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from saveexport import matrix
from saveexport.daemons import PrivateDockerd, _bridges_in
from saveexport.engines import Engine
from saveexport.errors import UsageError


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


@pytest.mark.parametrize("value, words", [("docker:hamm", "unknown Debian suite"), ("dockerd:/nonexistent",
                                          "not an executable dockerd"), ("kubernetes", "is not an engine")])
def test_bad_engine_values_say_what_to_use(value, words):
    with pytest.raises(UsageError, match=words):
        matrix.parse(value)


def test_every_engine_gets_its_own_test_ids(pytester, fake_dockerd):
    pytester.makepyfile("def test_x(saveexport_engine_spec):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", f"--saveexport-engine=dockerd:{fake_dockerd}",
                                f"--saveexport-engine=dockerd:{fake_dockerd}+containerd")
    result.stdout.fnmatch_lines(["*test_x[[]docker-99.1.0-overlay2[]]", "*test_x[[]docker-99.1.0-containerd[]]"])


def test_each_engine_is_one_xdist_group_so_engines_can_run_side_by_side(pytester, fake_dockerd):
    pytester.makepyfile("""
        def test_x(saveexport_engine_spec, request):
            marks = [m.kwargs.get("name") or m.args[0] for m in request.node.iter_markers("xdist_group")]
            assert marks == ["saveexport-" + saveexport_engine_spec.id]
    """)
    result = pytester.runpytest("-p", "no:randomly", f"--saveexport-engine=dockerd:{fake_dockerd}",
                                f"--saveexport-engine=dockerd:{fake_dockerd}+containerd", "--strict-markers")
    result.assert_outcomes(passed=2)


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
    if shutil.which("iptables"):
        assert "saveexport" not in subprocess.run(forward, capture_output=True, text=True).stdout
    assert not daemon.data_root.exists() and not daemon.run_dir.exists() and not daemon.log.exists()
    assert main.api.ping()  # the machine's engine still answers, its docker0 intact
    main.close()
