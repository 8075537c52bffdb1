"""Every private dockerd runs on a containerd of its own, also where the host runs one at
/run/containerd/containerd.sock (GitHub's runners do, as most hosts with Docker installed): left to
itself, dockerd joins that one, and an "empty" engine with the containerd store would start with the
host's images (own_containerd.py)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import docker.errors
import pytest

from saveexport import own_containerd
from saveexport.daemons import PrivateDockerd
from saveexport.engines import Engine
from saveexport.own_containerd import OwnContainerd

SYSTEM = Path("/run/containerd/containerd.sock")


def test_the_configuration_keeps_everything_below_its_own_places(tmp_path):
    text = own_containerd.config_text(tmp_path / "root" / "daemon", tmp_path / "state" / "daemon",
                                      tmp_path / "state" / "containerd.sock")
    assert f'root = "{tmp_path}/root/daemon"' in text and f'state = "{tmp_path}/state/daemon"' in text
    assert f'address = "{tmp_path}/state/containerd.sock"' in text
    assert f'address = "{tmp_path}/state/containerd.sock.ttrpc"' in text
    assert f'path = "{tmp_path}/root/opt"' in text  # not /opt/containerd
    assert '"io.containerd.nri.v1.nri"' in text  # its socket would be shared by every containerd
    assert "/run/containerd" not in text and "/var/lib/containerd" not in text


def _ctr(*argv: str) -> str:
    proc = subprocess.run(["ctr", "--address", str(SYSTEM), "--namespace", "moby", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def system_containerd(tmp_path):
    """The host's containerd at the default address: one the test starts (the host's own binary, a root in
    tmp_path) where none serves; a user's is only read, never written to."""
    if own_containerd.serving_system_containerd(str(SYSTEM)):
        yield None
        return
    made_dir = not SYSTEM.parent.exists()
    there = set() if made_dir else set(os.listdir(SYSTEM.parent))
    system = OwnContainerd(owner="the test's system containerd", binary=shutil.which("containerd"),
                           root=tmp_path / "system", state=SYSTEM.parent, log=tmp_path / "system-containerd.log")
    try:
        system.start(dict(os.environ))
        yield system
    finally:
        system.stop()
        if made_dir:
            shutil.rmtree(SYSTEM.parent, ignore_errors=True)
        else:  # only what it wrote there: its config, state and sockets
            for name in set(os.listdir(SYSTEM.parent)) - there:
                path = SYSTEM.parent / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _tiny_layer(path: Path) -> Path:
    data = uuid.uuid4().hex.encode()
    with tarfile.open(path, "w") as tar:
        member = tarfile.TarInfo("own-containerd.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return path


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_private_dockerd_never_joins_the_hosts_containerd(system_containerd, tmp_path):
    from saveexport.provision import fetch_suite

    assert own_containerd.serving_system_containerd(str(SYSTEM))
    dockerd = fetch_suite("sid").dockerd
    first = PrivateDockerd(name="selftest-own-ctd", dockerd=dockerd, index=15, containerd_store=True)
    empty = PrivateDockerd(name="selftest-own-ctd-empty", dockerd=dockerd, index=16, containerd_store=True)
    try:
        engine = Engine.connect(first.start())
        try:
            argv = _cmdline(first._pid())
            assert argv[argv.index("--containerd") + 1] == str(first.containerd.address)
            assert first.containerd.address.is_relative_to(first.exec_root)
            ref = f"saveexport-own-ctd/{uuid.uuid4().hex[:8]}"
            engine.api.import_image(src=str(_tiny_layer(tmp_path / "layer.tar")), repository=ref, tag="latest")
            assert [t for i in engine.api.images() for t in i.get("RepoTags") or []] == [f"{ref}:latest"]
            with open(tmp_path / "tiny.tar", "wb") as out:
                for chunk in engine.api.get_image(f"{ref}:latest"):
                    out.write(chunk)
        finally:
            engine.close()
        assert ref not in _ctr("images", "ls", "-q")  # nothing the engine holds is in the host's store
        if system_containerd is not None:  # the host's store holds an image of its own under dockerd's namespace
            _ctr("images", "import", str(tmp_path / "tiny.tar"))  # under the archive's own name
            assert ref in _ctr("images", "ls", "-q")
        engine = Engine.connect(empty.start())
        try:
            assert engine.api.images() == [], "the empty engine started with the host's images"
            with pytest.raises(docker.errors.ImageNotFound):
                engine.api.inspect_image(f"{ref}:latest")
        finally:
            engine.close()
    finally:
        first.stop()
        empty.stop()
    for daemon in (first, empty):
        assert not daemon.exec_root.exists() and not daemon.data_root.exists()
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _names_of(p, daemon.exec_root)]
    assert own_containerd.serving_system_containerd(str(SYSTEM))  # the host's is still there, untouched


def _names_of(proc: Path, path: Path) -> bool:
    from saveexport.host_state import names

    try:
        return names(path, (proc / "cmdline").read_bytes())
    except OSError:
        return False


def test_a_containerd_that_cannot_start_is_one_line_and_leaves_nothing(tmp_path):
    from saveexport.errors import EngineUnavailable

    broken = tmp_path / "bin" / "containerd"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'level=fatal msg=\"cannot start: planted failure\"' >&2\nexit 1\n")
    broken.chmod(0o755)
    daemon = PrivateDockerd(name="selftest-own-ctd-broken", dockerd=shutil.which("dockerd") or "/usr/sbin/dockerd",
                            index=17, containerd_bin=str(broken.parent))
    with pytest.raises(EngineUnavailable) as raised:
        daemon.start()
    line = str(raised.value)
    assert "\n" not in line and "planted failure" in line and "containerd" in line
    kept_log = daemon.log.with_name(daemon.name + ".containerd.log")
    assert str(kept_log) in line and kept_log.exists()  # kept for the reader, named in the line
    kept_log.unlink()
    assert not daemon.exec_root.exists() and not daemon.data_root.exists() and not daemon.run_dir.exists()
    bridges = subprocess.run(["ip", "link", "show", daemon.bridge], capture_output=True, text=True)
    assert bridges.returncode != 0  # its bridge is gone too
