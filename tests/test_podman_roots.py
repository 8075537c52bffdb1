"""Podman from a newer Debian suite, in a root of that suite (podman_roots.py, daemons.PodmanService):
on the real root (made once into the cache from the machine's Debian mirror), the service answers, and
whatever happens to it, nothing of it stays: no process, no mount, no directory. Also after Ctrl-C and
SIGTERM of the run that started it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import docker
import pytest

from saveexport import daemons, dead_runs, host_state, podman_roots, storage
from saveexport.errors import UsageError

from interrupting import INTERRUPTIBLE

ROOT = Path(__file__).resolve().parents[1]
SUITE = "trixie"


def test_a_store_is_named_only_by_its_own_path_never_by_a_sibling_that_starts_alike():
    store = Path("/var/lib/saveexport/engines/podman")
    assert host_state.names(store, b"podman\x00--root\x00/var/lib/saveexport/engines/podman/storage\x00")
    assert host_state.names(store, b"/var/lib/saveexport/engines/podman")
    assert host_state.names(store, b"36 1 0:5 / /x rw - overlay overlay rw,lowerdir=/var/lib/saveexport/engines/podman:/y")
    assert not host_state.names(store, b"--root\x00/var/lib/saveexport/engines/podman-5.4.2/storage\x00")
    assert not host_state.names(store, b"/var/lib/saveexport/engines/podmanx")


def test_what_stopped_a_service_is_its_own_last_error_in_a_few_words():
    lines = ['time="2026-12-02T03:02:26Z" level=warning msg="Using cgroups-v1 which is deprecated"',
             'time="2026-12-02T03:02:26Z" level=fatal msg="Cgroups v1 not supported"',
             "unshare: child exit failed"]
    assert host_state.last_words(lines) == "Cgroups v1 not supported"
    assert host_state.last_words(["plain words"]) == "plain words"
    assert host_state.last_words([]) == "?"


def test_an_unknown_suite_is_one_line_naming_the_known_ones():
    with pytest.raises(UsageError, match=r"podman:bookworm: unknown Debian suite; known: trixie"):
        podman_roots.fetch_root("bookworm")


@pytest.fixture(scope="module")
def root() -> podman_roots.PodmanRoot:
    try:
        return podman_roots.fetch_root(SUITE)
    except UsageError as exc:  # no mirror reachable, not root
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _ours(*paths: Path) -> list[str]:
    """Processes (any namespace) and host mounts that still name one of `paths`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            text = (proc / "cmdline").read_bytes() + b"\n" + (proc / "mountinfo").read_bytes()
        except OSError:
            continue
        if any(host_state.names(path, text) for path in paths):
            found.append(f"pid {proc.name}: {(proc / 'cmdline').read_bytes()[:120]!r}")
    found += [line for line in Path("/proc/mounts").read_text().splitlines()
              if any(host_state.names(path, line.encode()) for path in paths)]
    return found


def _sleeper(endpoint: str) -> str:
    client = docker.DockerClient(base_url=endpoint, timeout=120)
    try:
        tools = podman_roots_tools()
        client.api.import_image_from_data(tools.read_bytes(), repository="saveexport-test-tools", tag="latest")
        container = client.containers.run("saveexport-test-tools:latest", ["/bin/sh", "-c", "while :; do :; done"],
                                          detach=True, network_mode="none")
        return container.id
    finally:
        client.close()


def podman_roots_tools() -> Path:
    from saveexport.moves import tools_root

    path = Path("/tmp/saveexport-test-podman-roots-tools.tar")
    if not path.exists():
        tools_root(path, ("/bin/sh",))
    return path


@pytest.mark.parametrize("end", ["stopped", "killed"])
def test_nothing_of_a_service_in_a_root_stays_after_stop(root, end):
    service = daemons.PodmanService(name=f"podman-test-{end}", root=root.path)
    endpoint = service.start()
    paths = (service.data_root, service.run_dir)
    try:
        version = docker.APIClient(base_url=endpoint, timeout=30).version()
        assert version["Version"] == root.version
        _sleeper(endpoint)
        assert _ours(*paths), "the service and its container should name the store while they run"
        argv, env = service.cli()
        listed = subprocess.run([*argv, "ps", "--format", "{{.Image}}"], capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        assert "saveexport-test-tools" in listed.stdout, listed.stderr  # the CLI sees the service's store
        if end == "killed":  # the service dies at once; its conmon and container are left running
            os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=30)
            assert _ours(*paths), "the container should outlive a killed service"
    finally:
        service.stop()
    assert _ours(*paths) == []
    assert not service.data_root.exists() and not service.run_dir.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_process_or_mount_of_its_root(root, tmp_path, signum):
    (tmp_path / "test_hold.py").write_text(textwrap.dedent("""
        import time

        def test_hold(container_engine, engine_ops):
            print("serving at", container_engine.endpoint, flush=True)
            time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s",
                             f"--rootdir={ROOT}", "-c", str(ROOT / "tox.ini"), str(tmp_path / "test_hold.py"),
                             f"--saveexport-engine=podman:{SUITE}", f"--saveexport-report-dir={tmp_path / 'r'}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **INTERRUPTIBLE)
    lines = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving at"):
            break
    assert lines and lines[-1].startswith("serving at"), "".join(lines)[-2000:]
    socket = Path(lines[-1].split("unix://", 1)[1].strip())
    store = daemons.STATE_ROOT / socket.parent.name
    assert _ours(socket.parent, store)
    os.kill(proc.pid, signum)
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say what the run was doing, and leave nothing for the next tests
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output = "".join(lines) + proc.communicate()[0]
        for path in (socket.parent, store):  # the service and its conmon run in groups of their own
            host_state.kill_using(path)
        swept = dead_runs.sweep()
        pytest.fail(f"the run had not ended 120 s after {signal.Signals(signum).name}; the sweep removed "
                    f"{swept or 'nothing'}; its output:\n{output[-4000:]}")
    assert proc.returncode != 0
    assert _ours(socket.parent, store) == [], output[-2000:]
    assert not store.exists() and not socket.parent.exists()


def _address(endpoint: str) -> str:
    client = docker.DockerClient(base_url=endpoint, timeout=120)
    try:
        # tag "latest": Podman 4.3's compat import drops any other tag
        client.api.import_image_from_data(podman_roots_tools().read_bytes(), repository="saveexport-test-tools",
                                          tag="latest")
        container = client.containers.run("saveexport-test-tools:latest", ["/bin/sh", "-c", "while :; do :; done"],
                                          detach=True)
        container.reload()
        return next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    finally:
        client.close()


@pytest.mark.parametrize("where", ["host", "root"])
def test_a_services_image_copies_stay_in_its_own_store_and_go_with_it(where, request):
    """The compat API's import writes the archive it is sent to `api_load.tar…` in the image-copy temp dir
    and never removes it (podman#28531). Left at its default that is the user's /var/tmp (a root's, for a
    root's Podman): about 3 GB a matrix run. The service stages it in its own store, where the storage
    census counts it and stop removes it."""
    if where == "host" and shutil.which("podman") is None:
        pytest.skip("the host has no podman of its own")
    root = request.getfixturevalue("root") if where == "root" else None
    system_tmp = Path(root.path, "var", "tmp") if root else Path("/var/tmp")
    before = {p.name for p in system_tmp.iterdir()}
    service = daemons.PodmanService(name=f"podman-test-tmp-{where}", root=root.path if root else None)
    endpoint = service.start()
    try:
        client = docker.APIClient(base_url=endpoint, timeout=120)
        try:
            client.import_image_from_data(podman_roots_tools().read_bytes(), repository="saveexport-test-tmp",
                                          tag="latest")
        finally:
            client.close()
        census = storage.census(service.store, "podman")
        assert not census.error, census.error
        staged = sorted(p.name for p in service.image_tmp.iterdir())
    finally:
        service.stop()
    new = sorted(name for name in {p.name for p in system_tmp.iterdir()} - before if name.startswith("api_load"))
    assert new == [], f"the import's copy went to {system_tmp}, outside the service's store"
    assert census.objects["tmp"] == {f"tmp/{name}" for name in staged}  # what stays there, the census sees
    assert not service.data_root.exists()


def test_two_podman_services_at_once_have_networks_of_their_own(root):
    """The host's Podman and a suite's side by side (as the matrix runs them): each default network on a
    bridge and pool of its own, never podman0 and 10.88.0.0/16 shared, and both bridges gone at stop."""
    if shutil.which("podman") is None:
        pytest.skip("the host has no podman of its own")
    host = daemons.PodmanService(name="podman-test-host", index=1)
    suite = daemons.PodmanService(name="podman-test-suite", root=root.path, index=1)
    try:
        first, second = _address(host.start()), _address(suite.start())
        assert host.index != suite.index  # the second takes the next free slot
        assert first.startswith(host.pool.split(".0.0/")[0] + ".") and second.startswith(suite.pool.split(".0.0/")[0] + ".")
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        assert host.bridge in links and suite.bridge in links
    finally:
        host.stop()
        suite.stop()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert host.bridge not in links.split() and suite.bridge not in links.split()
    assert _ours(host.data_root, host.run_dir, suite.data_root, suite.run_dir) == []


def _cgroup_v2() -> bool:
    return subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True).stdout.strip() \
        == "cgroup2fs"


def test_provision_of_a_podman_that_cannot_run_here_is_one_line_naming_it():
    """experimental's Podman 6 dropped cgroup v1: on a cgroup v1 host provisioning makes its root, starts it
    once and says in one line what stopped it (its own words), exit 1; where it runs, exit 0."""
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "provision", "podman:experimental"],
                          capture_output=True, text=True, timeout=900)
    if _cgroup_v2():
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("saveexport: podman:experimental: podman 6.") and "cannot run on this host: " in lines[0]
    assert not list(daemons.RUN_ROOT.glob("podman-6*-provision*"))  # nothing of it stays
