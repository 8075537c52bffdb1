"""Podman from a Debian suite newer than the host's, in a root of that suite.

Podman 5 and later will not run from extracted .debs on Debian 12 (it needs a newer glibc and
libsubid), but a root of its own suite does: mmdebstrap makes it once per machine into the cache,
keyed by suite and by the versions of podman, conmon and runc it holds, under the cache lock. The
service runs inside it in a mount namespace of its own (daemons.PodmanService), so every mount it
makes dies with its processes and none reaches the host. runc, not crun: crun refuses this host's
hybrid cgroups ("cgroups in hybrid mode not supported").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import debian_mirror, progress
from .debian_mirror import Mirrors, proxy_environment
from .errors import UsageError
from .host_state import names
from .provision import PARTIAL, _apt, cache_lock, cache_root, drop_stale, write_atomically

# Debian suites whose podman is newer than bookworm's 4.3.1 ("experimental" holds podman alone: its root
# is sid's, with podman taken from experimental). Values: what the suite held when this was written,
# used only to name an engine whose root could not be made.
SUITES = {"trixie": "5.4.2", "forky": "5.8.6", "sid": "5.8.6", "experimental": "6.1.1"}
PACKAGES = ("podman", "conmon", "runc")
# What else the root holds: what installing podman brings on a Debian host, its Recommends included (as
# the host's 4.3.1 was installed). Without them Podman 5 cannot network: netavark's firewall driver is
# nftables ("netavark: nftables error: unable to execute nft") and a network's names need aardvark-dns
# (a Compose app's service found no database). `mount` for leaving the host's tree behind (_ENTER).
EXTRA = ("mount",)
RECOMMENDS = True
PREFIX = "podman-root-"


@dataclass(frozen=True)
class PodmanRoot:
    suite: str
    version: str  # podman's upstream version, e.g. 5.4.2
    path: str  # the root directory
    packages: dict  # Debian versions of PACKAGES in it
    source: str  # e.g. "debian trixie podman 5.4.2+ds1-2+b2 (root)"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def podman(self) -> str:
        return "/usr/bin/podman"  # inside the root


def _base(suite: str) -> str:
    return "sid" if suite == "experimental" else suite


def candidate_version(suite: str, mirrors: Mirrors, cache: Path) -> str:
    """The Debian version of podman the mirror offers in `suite` (what keys the root)."""
    log = cache / "fetch.log"
    options = _apt(cache, suite, mirrors, f"podman:{suite}", log)
    # the host's own podman (dpkg's status) is no candidate: experimental's pin would prefer it
    proc = subprocess.run(["apt-cache", *options, "-o", "Dir::State::status=/dev/null", "show", "--no-all-versions",
                           "podman"], capture_output=True,
                          text=True, check=False)
    match = re.search(r"^Version: (\S+)$", proc.stdout, re.M)
    if proc.returncode != 0 or match is None:
        raise UsageError(f"podman:{suite}: Debian {suite} offers no podman package "
                         f"({(proc.stderr.strip().splitlines() or ['none listed'])[-1][:200]})")
    return match.group(1)


def fetch_root(suite: str, mirrors: Mirrors | None = None, cache: Path | None = None) -> PodmanRoot:
    """The root of `suite` with its podman, made once (the mirror is asked which version it offers)."""
    if suite not in SUITES:
        raise UsageError(f"podman:{suite}: unknown Debian suite; known: {', '.join(SUITES)} (plain `podman` is "
                         f"the host's own)")
    if os.geteuid() != 0:
        raise UsageError(f"podman:{suite} runs in a root of Debian {suite}, which needs root (mount namespaces, "
                         f"chroot); run as root or use the host's podman (`podman`)")
    cache = cache or cache_root()
    mirrors = mirrors or debian_mirror.choose()
    with cache_lock(cache):  # the suite's apt lists are shared with the Docker builds of that suite
        version = candidate_version(suite, mirrors, cache)
    with cache_lock(cache, f"{PREFIX}{suite}"):  # the root takes a while: Docker's fetches need not wait
        recipe = hashlib.sha256(" ".join(PACKAGES + EXTRA + (f"recommends={RECOMMENDS}",)).encode()).hexdigest()[:8]
        target = cache / f"{PREFIX}{suite}-{re.sub(r'[^A-Za-z0-9.+-]', '_', version)}-{recipe}"
        done = target / "root.json"
        if not done.exists():
            drop_stale(cache, f"{PREFIX}{suite}")
            with progress.phase(f"making a Debian {suite} root with its Podman {version} for podman:{suite} (once: "
                                f"cached in {cache})"):
                _make(suite, mirrors, cache, target, done)
    return PodmanRoot(**json.loads(done.read_text()))


def remove_roots(cache: Path | None = None) -> list[str]:
    """`saveexport gc --cache`: every suite's root, each under its lock (a run that makes or starts one
    holds it only while making it; a service still running from a root keeps it: named, not removed)."""
    cache = cache or cache_root()
    said = []
    for path in sorted(p for p in cache.glob(PREFIX + "*") if p.is_dir()):
        suite = path.name[len(PREFIX):].split("-", 1)[0]
        root = path / "root"
        with cache_lock(cache, f"{PREFIX}{suite}"):
            users = _users_of(root)
            if users:
                said.append(f"kept {path} (in use by pid {', '.join(users)})")
                continue
            shutil.rmtree(path, ignore_errors=True)
            said.append(f"removed {path}")
    return said


def _users_of(root: Path) -> list[str]:
    """Processes of a service started from `root` (their mount tables name it, or they run inside it)."""
    users = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if names(root, (proc / "cmdline").read_bytes()):
                users.append(proc.name)
        except OSError:
            continue
    return users


def _make(suite: str, mirrors: Mirrors, cache: Path, target: Path, done: Path) -> None:
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise UsageError(f"podman:{suite} needs mmdebstrap to make its root ('apt-get install mmdebstrap', or run "
                         f"scripts/engine up as root)")
    needed_by = f"podman:{suite} (a root of Debian {suite})"
    mirror = mirrors.for_suite(_base(suite), needed_by)
    sources = [mirror.source_line(_base(suite))]
    include = ",".join(PACKAGES + EXTRA)
    if suite == "experimental":
        sources.append(mirrors.for_suite("experimental", needed_by).source_line("experimental"))
        include = include.replace("podman", "podman/experimental", 1)
    partial = Path(tempfile.mkdtemp(dir=cache, prefix=f"{PARTIAL}{PREFIX}{suite}-"))
    log = cache / f"{PREFIX}{suite}.log"
    try:
        argv = [tool, "--variant=apt", f"--include={include}", *mirrors.mmdebstrap_options(),
                f'--aptopt=APT::Install-Recommends "{str(RECOMMENDS).lower()}"',
                # a host's root, not an image: it keeps no sources (the mirror stays out of it)
                '--customize-hook=: > "$1/etc/apt/sources.list"', _base(suite), str(partial / "root"), *sources]
        with open(log, "wb") as out:
            returncode = progress.run_logged(argv, out, pick=progress.mmdebstrap_stage,
                                             env=dict(os.environ, **proxy_environment(mirrors, mirror.uri)))
        if returncode != 0:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise UsageError(f"{needed_by}: mmdebstrap failed ({last[0][:200]}); full log: {log}")
        packages = _installed(partial / "root")
        missing = [name for name in PACKAGES if name not in packages]
        if missing:
            raise UsageError(f"{needed_by}: the root holds no {', '.join(missing)}; full log: {log}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    debian = packages["podman"]
    root = PodmanRoot(suite=suite, version=debian.split("+")[0].split("-")[0].split("~")[0],
                      path=str(target / "root"), packages=packages,
                      source=f"debian {suite} podman {debian}, conmon {packages['conmon']}, runc {packages['runc']} "
                             f"(a root of {_base(suite)})")
    write_atomically(done, json.dumps(root.to_dict()))


def _installed(root: Path) -> dict[str, str]:
    proc = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\\n",
                           *PACKAGES], capture_output=True, text=True, check=False)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line and line.split(" ", 1)[1])


# Entering the root: a mount namespace of its own (nothing propagates back to the host), the root bound
# onto itself, the host's /dev and /sys, a proc and tmpfs /run and /tmp of its own, and the service's run
# and state directories at their host paths (its socket and store are where the plugin reaches them); then
# pivot_root into it and drop the host's tree. Not chroot: under a chroot, `exec` into a container ran in
# the service's namespace outside the chroot instead of the container (measured with Podman 5.4.2: the
# host's /run, no database socket).
_ENTER = """set -e
root=$1; shift; n=$1; shift
mount --make-rprivate /
mount --bind "$root" "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
while [ "$n" -gt 0 ]; do mkdir -p "$root$1"; mount --bind "$1" "$root$1"; shift; n=$((n - 1)); done
mkdir -p "$root/.host"
cd "$root"
pivot_root . .host
exec /bin/sh -c 'umount -l /.host; exec "$@"' sh "$@"
"""


def enter(root: str, binds: list[Path], argv: list[str]) -> list[str]:
    """argv that runs `argv` inside the root, in a new mount namespace, with `binds` at their host paths."""
    return ["unshare", "--mount", "--fork", "--kill-child=SIGTERM", "--", "sh", "-c", _ENTER, "sh", root,
            str(len(binds)), *(str(path) for path in binds), *argv]


def join(pid: int, argv: list[str]) -> list[str]:
    """argv that runs `argv` inside a running service's namespace, whose root is the suite's."""
    return ["nsenter", f"--target={pid}", "--mount", "--", *argv]


def provision(suite: str, mirrors: Mirrors | None = None) -> str:
    """Make the suite's root and start its podman once: one line saying where it is, or (EngineUnavailable)
    what stopped it on this host."""
    from .daemons import PodmanService
    from .errors import EngineUnavailable

    root = fetch_root(suite, mirrors=mirrors)
    service = PodmanService(name=f"podman-{root.version}-provision", root=root.path)
    try:
        service.start()
    except EngineUnavailable as exc:
        raise EngineUnavailable(f"podman:{suite}: podman {root.version} ({root.source}) cannot run on this host: "
                                f"{exc}") from None
    service.stop()
    return f"podman {root.version}: {root.path} ({root.source}); use --saveexport-engine podman:{suite}"
