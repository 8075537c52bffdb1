"""Private engines the plugin starts and stops: a dockerd of any version, optionally with the
containerd image store, beside whatever engine the user runs.

Each has its own data-root, exec-root, socket, pidfile, containerd (own_containerd.py), bridge and
address pool for the networks it creates; it never touches docker0 (never `--bridge none`: that deletes the host's docker0 at
start-up) and runs with `--iptables=false`, so it writes no NAT or isolation rules of its own.

One rule is needed all the same: the machine's engine sets the FORWARD policy to DROP, and with
br_netfilter loaded that also drops bridged traffic between two containers of a private daemon (a
compose app cannot reach its database). The daemon's own subnets are accepted among themselves by
one commented FORWARD rule while it runs. Stopping it removes that rule, its data-root and its
bridge: nothing of it stays on the machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import calls, progress
from .errors import EngineUnavailable
from .host_state import (STOP_GRACE_S, accept_within, bridges_in, end, in_netns, kill_namespaces_holding, kill_using,
                         last_words, signal_group, unmount_below)
from .own_containerd import OwnContainerd, find_binary

RUN_ROOT = Path(os.environ.get("SAVEEXPORT_RUN_ROOT", "/run/saveexport"))  # sockets want short paths
STATE_ROOT = Path(os.environ.get("SAVEEXPORT_STATE_ROOT", "/var/lib/saveexport/engines"))
CLAIMS = RUN_ROOT / "claims"
MAX_SLOT = 55  # the address pool 10.(200+slot).0.0/16 must stay a valid address


def try_claim(kind: str, value: str):
    """The claim's lock, taken without waiting (fcntl.flock: it ends with the process that holds it,
    however that process ends); None while a live process holds it."""
    CLAIMS.mkdir(parents=True, exist_ok=True)
    handle = open(CLAIMS / f"{kind}-{value}.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _first_free(candidates: list[str], kind: str) -> tuple[list, str]:
    """The first candidate no live process holds, claimed."""
    for candidate in candidates:
        handle = try_claim(kind, candidate)
        if handle is not None:
            return [handle], candidate
    raise EngineUnavailable(f"every private engine {kind} from {candidates[0]} on is in use by other runs on this "
                            f"machine; wait for them or stop them (scripts/engine status)")


class _Places:
    """Where a private engine named `name` keeps its socket, state and log (both kinds alike).

    Two runs on one machine may start engines of the same name and slot at once (two CI jobs, or a
    user's run beside CI). Each claims its name and slot with a lock held while its engine runs; a
    name or slot another live process holds is passed over for the next free one, so neither stops
    or overwrites the other's engine. What a dead run left under a name or slot (its lock died with
    it) is removed before the new engine starts."""

    name: str
    socket_name = "docker.sock"
    slots = False  # whether it also claims a slot (bridge, subnets, exec-root)
    index: int = 0

    def _claim(self) -> None:
        if getattr(self, "_claims", None):
            return
        claims, self.name = _first_free([self.name] + [f"{self.name}-{n}" for n in range(2, 100)], "name")
        if self.slots:
            order = [self.index] + [i for i in range(self.index + 1, MAX_SLOT + 1)] + list(range(1, self.index))
            held, index = _first_free([str(i) for i in order], "slot")
            claims += held
            self.index = int(index)
        self._claims = claims

    def _release(self) -> None:
        for handle in getattr(self, "_claims", None) or []:
            handle.close()
        self._claims = []

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def data_root(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / self.socket_name

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.data_root.with_name(self.name + ".log")


@dataclass
class PrivateDockerd(_Places):
    name: str  # e.g. docker-26.1.5-containerd; names its directories and bridge
    dockerd: str
    index: int  # picks the bridge subnet 172.(40+index).0.0/16
    containerd_store: bool = False
    min_api: str | None = None  # DOCKER_MIN_API_VERSION: the oldest API it accepts (Docker 29 ships 1.44)
    containerd_bin: str | None = None  # a directory with another containerd (and its shim) than the host's
    netns: str | None = None  # a network namespace (ip netns) to run in: its bridge and containers live there
    started: float = 0.0
    process: subprocess.Popen | None = field(default=None, repr=False)
    containerd: OwnContainerd | None = field(default=None, repr=False)
    slots = True

    @property
    def bridge(self) -> str:
        return f"sebr{self.index}"

    def _ns(self, argv: list[str]) -> list[str]:
        # nsenter, not `ip netns exec`: that mounts a sysfs of its own over /sys, and dockerd then finds no
        # cgroups ("Devices cgroup isn't mounted")
        return in_netns(self.netns, argv)

    @property
    def exec_root(self) -> Path:
        """Short and named by the slot, not the name: containerd's sockets below it must stay within
        the 108 bytes of a unix socket path, and a long name (an -empty- engine of a raised-floor
        build) went past that ("timeout waiting for containerd to start")."""
        return RUN_ROOT / f"exec-{self.index}"

    def start(self, wait_s: float = 60) -> str:
        if os.geteuid() != 0:
            raise EngineUnavailable(f"starting a private dockerd ({self.name}) needs root")
        self._claim()
        with progress.phase(f"starting {self.name} (a private dockerd)"):
            began = time.monotonic()
            try:
                endpoint = self._start(wait_s)
            except BaseException:  # a failed start, or Ctrl-C during it: nothing of it stays
                self.stop(keep_log=True)
                raise
            if calls.recording():
                calls.engine("start", self.replay_facts(), time.monotonic() - began)
            return endpoint

    def replay_facts(self) -> dict:
        """What a shell script needs to start and stop this engine as `start` and `stop` do (the call
        record's benchmark replays it: benchmarks/replay.py)."""
        argv, env = self._launch
        own = self.containerd
        return {"name": self.name, "endpoint": self.endpoint, "socket": str(self.socket), "netns": self.netns,
                "dirs": [str(self.run_dir), str(self.data_root / "data"), str(self.exec_root)],
                "bridge": self.bridge, "bridge_address": self.bridge_address,
                "nets": [self.subnet, self.pool], "rule_comment": f"saveexport {self.name}",
                "files": {str(self.data_root / "daemon.json"): (self.data_root / "daemon.json").read_text(),
                          **({str(own.config_file): own.config_file.read_text()} if own else {})},
                "containerd": ({"argv": own.argv,
                                "address": str(own.address), "dirs": [str(own.root), str(own.state)]} if own else None),
                "dockerd": {"argv": argv, "env": {key: env[key] for key in ("PATH", "DOCKER_MIN_API_VERSION")
                                                  if key in env}},
                "remove": [str(self.data_root), str(self.exec_root), str(self.run_dir)]}

    def _start(self, wait_s: float) -> str:
        self._clean()  # what a dead run left under this name and slot
        for path in (self.run_dir, self.data_root / "data", self.exec_root):
            path.mkdir(parents=True, exist_ok=True)
        self._bridge_up()
        self._forward(add=True)
        argv = [self.dockerd, "--host", self.endpoint, "--data-root", str(self.data_root / "data"),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.run_dir / "dockerd.pid"),
                "--bridge", self.bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                f"--default-address-pool=base={self.pool},size=24"]
        config = {"features": {"containerd-snapshotter": True}} if self.containerd_store else {}
        config_file = self.data_root / "daemon.json"
        config_file.write_text(json.dumps(config))
        argv += ["--config-file", str(config_file)]
        env = dict(os.environ)
        # the build's own helpers (docker-proxy, docker-init) first; containerd and runc from the host (or
        # the containerd asked for): the first `containerd` on this PATH runs for this daemon alone
        env["PATH"] = os.pathsep.join([*([self.containerd_bin] if self.containerd_bin else []),
                                       str(Path(self.dockerd).parent), str(Path(self.dockerd).parents[1] / "bin"),
                                       env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
        env.pop("DOCKER_HOST", None)
        env.pop("DOCKER_MIN_API_VERSION", None)
        if self.min_api:
            env["DOCKER_MIN_API_VERSION"] = self.min_api
        progress.update("starting its containerd", step=True)
        argv += ["--containerd", self._own_containerd(env).start(env, self._ns)]
        self._launch = (self._ns(argv), env)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self._ns(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True)
        return self._wait_until_answers(wait_s)

    def _own_containerd(self, env: dict[str, str]) -> OwnContainerd:
        """Never the host's (own_containerd.py): the first containerd on the daemon's PATH, run for it alone."""
        binary = find_binary(env["PATH"])
        if binary is None:
            raise EngineUnavailable(f"private dockerd {self.name} needs a containerd and none is on its PATH "
                                    f"({env['PATH']}): install Debian's containerd or use a bundle that has one")
        self.containerd = OwnContainerd(owner=self.name, binary=binary, root=self.data_root / "data" / "containerd",
                                        state=self.exec_root / "containerd",
                                        log=self.log.with_name(self.name + ".containerd.log"))
        return self.containerd

    def restart(self, wait_s: float = 60, *, down: bool = True) -> str:
        """Stop the daemon as a service manager would (SIGTERM) and start it again on the same data-root:
        what an engine restarted under a running suite looks like. `down=False`: start it again only."""
        if down and self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        argv, env = self._launch
        if self.containerd is not None and (self.containerd.process is None or self.containerd.process.poll() is not None):
            self.containerd.start(env, self._ns)  # it went down with the daemon: as a service manager would
        # Started again on its old data-root, dockerd (20.10 here) drops the stale default network it finds
        # in its network store and, with it, deletes the *host's* docker0 (seen here: the machine's engine
        # lost its bridge). Its networks go with the store; images, containers and volumes stay.
        (self.data_root / "data" / "network" / "files" / "local-kv.db").unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True)
        return self._wait_until_answers(wait_s)

    def _wait_until_answers(self, wait_s: float) -> str:
        self.started = time.monotonic()
        deadline = self.started + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                self.stop(keep_log=True)
                raise EngineUnavailable(f"private dockerd {self.name} exited at start-up: {last[0][:300]}; "
                                        f"log: {self.log}")
            if self.socket.exists() and _answers(self.socket):
                return self.endpoint
            waited = time.monotonic() - self.started
            progress.update(f"waiting for it to answer ({waited:.0f} s of at most {wait_s:.0f})")
            time.sleep(0.3)
        self.stop(keep_log=True)
        raise EngineUnavailable(f"private dockerd {self.name} did not answer within {wait_s:.0f}s; log: {self.log}")

    def stop(self, keep_log: bool = False) -> None:
        began, running = time.monotonic(), self.process is not None and self.process.poll() is None
        self._clean(keep_log)
        self._release()
        if running:
            calls.engine("stop", {"name": self.name, "endpoint": self.endpoint}, time.monotonic() - began)

    def _clean(self, keep_log: bool = False) -> None:
        pid = self._pid()
        if pid:
            end(pid, self.process)
        if self.process is not None:
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if self.containerd is not None:
            self.containerd.stop(keep_log=keep_log)
        kill_using(self.exec_root)  # its shims, and what a dead run left (its containerd names this root too)
        unmount_below(self.data_root)
        unmount_below(self.exec_root)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        subprocess.run(self._ns(["ip", "link", "del", self.bridge]), capture_output=True, check=False)
        for bridge in bridges_in(self.pool, self.netns):  # a stopped dockerd leaves its networks' bridges behind
            subprocess.run(self._ns(["ip", "link", "del", bridge]), capture_output=True, check=False)
        self._forward(add=False)
        if self.started and not keep_log:
            self.log.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        try:
            return int((self.run_dir / "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def subnet(self) -> str:
        return f"172.{40 + self.index}.0.0/16"

    @property
    def bridge_address(self) -> str:
        return self.subnet.replace(".0.0/16", ".0.1/16")

    @property
    def pool(self) -> str:
        return f"10.{200 + self.index}.0.0/16"

    def _forward(self, add: bool) -> None:
        """Accept traffic inside the daemon's own subnets (see the module's docstring); remove it again."""
        accept_within(self.name, (self.subnet, self.pool), add, self._ns)

    def _bridge_up(self) -> None:
        subprocess.run(self._ns(["ip", "link", "del", self.bridge]), capture_output=True, check=False)
        for argv in (["ip", "link", "add", self.bridge, "type", "bridge"],
                     ["ip", "addr", "add", self.bridge_address, "dev", self.bridge],
                     ["ip", "link", "set", self.bridge, "up"]):
            proc = subprocess.run(self._ns(argv), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise EngineUnavailable(f"could not set up bridge {self.bridge} ({' '.join(argv)}): "
                                        f"{proc.stderr.strip()}")


def _answers(socket_path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"200 OK" in sock.recv(256)
    except OSError:
        return False


@dataclass
class PodmanService(_Places):
    """`podman system service` on a socket of its own, serving the Docker-compatible API.

    Like a private dockerd it has a store of its own (--root, --runroot, --tmpdir, and TMPDIR for its
    image copies), so it starts empty, never sees the user's Podman images, and is deleted with everything in it afterwards.
    With `root` (podman_roots.py) it is a newer Debian suite's podman, run inside that suite's root in
    a mount namespace of its own; its socket and store are bound in at their host paths.
    """

    name: str = "podman"
    root: str | None = None
    index: int = 1  # its slot: picks the address pool 10.(200+index).0.0/16 and the default bridge sepm<index>
    process: subprocess.Popen | None = field(default=None, repr=False)
    env: dict | None = field(default=None, repr=False)
    socket_name = "podman.sock"
    slots = True

    @property
    def pool(self) -> str:
        return f"10.{200 + self.index}.0.0/16"

    @property
    def bridge(self) -> str:
        return f"sepm{self.index}"

    def _networks(self) -> str:
        """containers.conf's [network]: networks of its own (a config directory, an address pool and a
        default network on a bridge of its own), so two Podman services at once (two versions side by
        side) never share podman0 and 10.88.0.0/16 and hand out the same addresses on it."""
        directory = self.run_dir / "networks"
        directory.mkdir(parents=True, exist_ok=True)
        base = self.pool.split(".0.0/")[0]
        (directory / "podman.json").write_text(json.dumps({
            "name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge", "network_interface": self.bridge, "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": f"{base}.0.0/24", "gateway": f"{base}.0.1"}], "ipv6_enabled": False,
            "internal": False, "dns_enabled": False, "ipam_options": {"driver": "host-local"}}))
        return (f'[network]\nnetwork_config_dir = "{directory}"\ndefault_subnet = "{base}.0.0/24"\n'
                f'default_subnet_pools = [{{"base" = "{base}.0.0/16", "size" = 24}}]\n')

    @property
    def store(self) -> Path:
        return self.data_root / "storage"

    @property
    def image_tmp(self) -> Path:
        """Where its image copies are staged: Podman's own `image_copy_tmp_dir = "storage"` place, set by
        TMPDIR (which every Podman reads first). Left to its default, /var/tmp, the compat API's import
        leaves each archive it was sent there for good (4.3.1 to 5.8.6): in the user's /var/tmp, or in a
        root's, where no census sees it and no stop removes it."""
        return self.store / "tmp"

    def _argv(self, podman: str) -> list[str]:
        return [podman, "--root", str(self.store), "--runroot", str(self.run_dir / "runroot"),
                "--tmpdir", str(self.run_dir / "tmp")]

    def _podman(self) -> str | None:
        if self.root is not None:
            return "/usr/bin/podman" if Path(self.root, "usr/bin/podman").exists() else None
        return shutil.which("podman")

    def cli(self) -> tuple[list[str], dict[str, str]]:
        """The podman CLI on this service's own store (what the compat API cannot do: save an oci-archive).
        Give it files by stdin and stdout: a root's podman sees no host path but its store's."""
        argv = self._argv(self._podman() or "podman")
        if self.root is not None and self.process is not None:
            from .podman_roots import join

            argv = join(self.process.pid, argv)
        return argv, dict(self.env or os.environ)

    def start(self, wait_s: float = 30) -> str:
        podman = self._podman()
        if podman is None:
            raise EngineUnavailable(f"there is no podman in {self.root}; remove it and run again (saveexport gc "
                                    f"--cache)" if self.root else "podman is not installed; 'apt-get install "
                                    "podman' (Debian) or leave it out of --saveexport-engine")
        self._claim()
        with progress.phase(f"starting {self.name} (podman system service{' in its root' if self.root else ''})"):
            return self._start(podman, wait_s)

    def _start(self, podman: str, wait_s: float) -> str:
        self._clean()  # what a dead run left under this name
        for path in (self.run_dir, self.data_root):
            path.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "containers.conf"
        # this VM cannot raise rlimits beyond these (podman's defaults ask for more and containers fail);
        # no systemd runs here: cgroupfs and a file for events; in a root, runc (crun refuses hybrid cgroups)
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                        + ('runtime = "runc"\n' if self.root else "") + self._networks())
        accept_within(self.name, (self.pool,), add=True)  # Podman 5's nftables rules alone do not pass
        # the machine's engine's FORWARD DROP: a Compose app never reached its database
        self.image_tmp.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf), TMPDIR=str(self.image_tmp))
        argv = [*self._argv(podman), "system", "service", "--time=0", self.endpoint]
        if self.root is not None:
            from .podman_roots import enter

            self.env["PODMAN_IGNORE_CGROUPSV1_WARNING"] = "1"  # the warning, on every call, says nothing new
            argv = enter(self.root, [self.run_dir, self.data_root], argv)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env, start_new_session=True)
        try:
            return self._wait_until_answers(wait_s)
        except BaseException:  # it did not answer, or the run was interrupted while it started
            self.stop(keep_log=True)
            raise

    def _wait_until_answers(self, wait_s: float) -> str:
        started = time.monotonic()
        deadline = started + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = [line for line in self.log.read_text(errors="replace").strip().splitlines() if line.strip()]
                raise EngineUnavailable(f"podman system service exited at start-up: {last_words(said)}; "
                                        f"log: {self.log}")
            if self.socket.exists() and _answers(self.socket):
                return self.endpoint
            progress.update(f"waiting for it to answer ({time.monotonic() - started:.0f} s of at most {wait_s:.0f})")
            time.sleep(0.3)
        raise EngineUnavailable(f"podman system service did not answer within {wait_s:.0f}s; log: {self.log}")

    def stop(self, keep_log: bool = False) -> None:
        self._clean(keep_log)
        self._release()

    def _clean(self, keep_log: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGTERM)  # in a root: unshare ignores it, podman does not
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.process = None
        podman = shutil.which("podman")
        if self.root is None and podman and self.data_root.exists():  # stop what still runs, then drop the store
            subprocess.run([*self._argv(podman), "system", "reset", "--force"], capture_output=True, timeout=120,
                           env=self.env, check=False)
        # a dead run's service, conmon monitors that outlive their containers (for their exit delay), and
        # whatever still runs in a namespace that holds the store (a root's, or a container's)
        for path in (self.data_root, self.run_dir):
            kill_using(path)
            unmount_below(path)  # first: then only namespaces of its own still hold it (host_state)
            kill_namespaces_holding(path)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        accept_within(self.name, (self.pool,), add=False)
        # the default network's bridge, and those of networks a killed service could not tear down (netavark
        # names them podmanN: only those whose every address lies in this service's pool are its own)
        for bridge in [self.bridge, *bridges_in(self.pool, prefixes=("podman",), only=True)]:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        if not keep_log:
            self.log.unlink(missing_ok=True)
