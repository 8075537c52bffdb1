"""A containerd of one private dockerd's own, started before it and handed to it with `--containerd`.

Left to itself, a dockerd joins any containerd already serving /run/containerd/containerd.sock (most
hosts with Docker installed run one, GitHub's runners among them) and starts one of its own only when
none answers there. Joined, the private engine shares that containerd's content store and namespace
`moby` with the host's Docker: an "empty" engine with the containerd image store starts with the host's
images, and what the suite loads lands in the host's store. So every private dockerd gets a containerd
here, on a socket and root of its own, in the places dockerd's own would use (`<data-root>/containerd`
for content, `<exec-root>/containerd` for state and sockets), and it is stopped with the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EngineUnavailable
from .host_state import last_words

# Kubernetes' CRI, which dockerd's own supervisor turns off too (containerd 2 splits it into three plugins;
# containerd 1.x has only the first and ignores names it lacks), and NRI, whose socket
# /var/run/nri/nri.sock would be shared by every containerd here.
SYSTEM_ADDRESS = "/run/containerd/containerd.sock"  # where dockerd looks for a containerd to join
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
                    "io.containerd.nri.v1.nri")


def config_text(root: Path, state: Path, address: Path) -> str:
    """containerd's configuration, version 2 (containerd 1.x reads it; 2.x migrates it on reading)."""
    def quoted(value: object) -> str:
        return json.dumps(str(value))  # a TOML basic string is a JSON string for these characters

    return "\n".join([
        "version = 2",
        f"root = {quoted(root)}",
        f"state = {quoted(state)}",
        f"disabled_plugins = [{', '.join(quoted(p) for p in DISABLED_PLUGINS)}]",
        "",
        "[grpc]",
        f"  address = {quoted(address)}",
        "",
        "[ttrpc]",
        f"  address = {quoted(str(address) + '.ttrpc')}",
        "",
        "[debug]",
        '  address = ""',
        "",
        "[metrics]",
        '  address = ""',
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {quoted(root.parent / 'opt')}",
        "",
    ])


def _listening(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(path))
            return True
    except OSError:
        return False


@dataclass
class OwnContainerd:
    owner: str  # the private dockerd's name, for messages
    binary: str
    root: Path  # <data-root>/containerd: content, snapshots, metadata below root/daemon
    state: Path  # <exec-root>/containerd: sockets, shims' state below state/daemon
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    argv: list[str] = field(default_factory=list, repr=False)  # as it was last started

    @property
    def address(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def config_file(self) -> Path:
        return self.state / "containerd.toml"

    def start(self, env: dict[str, str], wrap=lambda argv: argv, wait_s: float = 30) -> str:
        """Start it and wait until its socket takes connections; returns the address for `--containerd`."""
        for path in (self.root, self.state):
            path.mkdir(parents=True, exist_ok=True)
        self.address.unlink(missing_ok=True)
        self.config_file.write_text(config_text(self.root / "daemon", self.state / "daemon", self.address))
        self.argv = argv = wrap([self.binary, "--config", str(self.config_file)])
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                words = last_words(self.log.read_text(errors="replace").strip().splitlines())
                self.stop(keep_log=True)
                raise EngineUnavailable(f"the containerd of private dockerd {self.owner} ({self.binary}) exited at "
                                        f"start-up: {words}; log: {self.log}")
            if _listening(self.address):
                return str(self.address)
            time.sleep(0.1)
        self.stop(keep_log=True)
        raise EngineUnavailable(f"the containerd of private dockerd {self.owner} ({self.binary}) did not listen on "
                                f"{self.address} within {wait_s:.0f}s; log: {self.log}")

    def stop(self, keep_log: bool = False) -> None:
        """SIGTERM, then SIGKILL after 10 s; its shims are the caller's to end (they outlive it by design)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self.process = None
        self.address.unlink(missing_ok=True)
        self.address.with_name(self.address.name + ".ttrpc").unlink(missing_ok=True)
        if not keep_log:
            self.log.unlink(missing_ok=True)


def find_binary(path: str) -> str | None:
    """The containerd a dockerd would start itself: the first on its PATH."""
    return shutil.which("containerd", path=path)


def serving_system_containerd(address: str = SYSTEM_ADDRESS) -> bool:
    """Whether a containerd (any process) takes connections where dockerd would look for one first."""
    return os.path.exists(address) and _listening(Path(address))
