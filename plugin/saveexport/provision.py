"""Engine builds for the matrix: Docker versions from Debian's suites, or a dockerd bundle a user has.

`apt-get download` runs with sources of its own (one suite each, from the mirror debian_mirror.py
chooses) and its own lists and cache directories, so the machine's apt state is never touched, while
apt's own configuration (its proxy) still applies; the .deb is unpacked with `dpkg-deb -x` into the
cache. Its dockerd runs on the host with the host's containerd and runc. What is cached is keyed by
suite and package, never by mirror: the same packages from another mirror are the same packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import debian_mirror, progress
from .debian_mirror import Mirrors
from .errors import UsageError

SUITES = {"bullseye": "20.10.5", "bookworm": "20.10.24", "trixie": "26.1.5", "sid": "28.5.2"}


@dataclass(frozen=True)
class Build:
    """One unpacked engine build: where its dockerd is, and where it came from."""

    version: str
    dockerd: str
    source: str  # e.g. "debian trixie docker.io 26.1.5+dfsg1-9+b8" or "bundle /opt/docker"

    def to_dict(self) -> dict:
        return asdict(self)


def cache_root() -> Path:
    if os.environ.get("SAVEEXPORT_ENGINE_CACHE"):
        return Path(os.environ["SAVEEXPORT_ENGINE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "saveexport" / "engines"


def _run(argv: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise UsageError(f"{what} failed ({last[0]}); full log: {log}")


def _apt(root: Path, suite: str, mirrors: Mirrors, needed_by: str, log: Path) -> list[str]:
    """apt-get options for an apt state of our own holding one suite, from the first mirror that has it."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise UsageError(f"fetching packages from Debian needs {tool}; on other systems install them yourself "
                             f"(a dockerd bundle: dockerd:PATH; Compose v2: the docker-compose-plugin package)")
    mirror = mirrors.for_suite(suite, needed_by)  # before apt runs: a mirror without the suite is one line
    apt = root / "apt" / suite
    for sub in ("lists/partial", "cache/archives/partial", "etc/preferences.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    sources = apt / "etc" / "sources.list"
    line = mirror.source_line(suite) + "\n"
    if not sources.exists() or sources.read_text() != line:  # another mirror: its lists, not the old ones
        shutil.rmtree(apt / "lists", ignore_errors=True)
        (apt / "lists" / "partial").mkdir(parents=True)
        sources.write_text(line)
    options = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/nonexistent",
               "-o", f"Dir::Etc::Preferences={apt}/etc/preferences", "-o", f"Dir::Etc::PreferencesParts={apt}/etc/preferences.d",
               "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}/cache",
               "-o", "APT::Get::AllowUnauthenticated=false", "-o", "Acquire::Languages=none", "-q"]
    if not any((apt / "lists").glob("*Packages*")):
        _run(["apt-get", *options, "update"], log, f"apt-get update of Debian {suite} from {mirror.uri}")
    return options


@contextlib.contextmanager
def cache_lock(directory: Path, name: str = ""):
    """One writer at a time in a cache directory (xdist workers, or two runs on one machine); the
    others wait, then find what it made. `name`: a lock of its own for what may be made while another
    lock of the directory is held (the stand-ins' base, made during a stand-in's build)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / (f".lock-{name}" if name else ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _download(package: str, suite: str, downloads: Path, root: Path, mirrors: Mirrors | None,
              needed_by: str) -> Path:
    """`apt-get download PACKAGE/SUITE` into `downloads` (once): the newest .deb there.

    apt-get writes the .deb under its final name as it arrives, so it downloads into a directory of its
    own and the whole file is moved in: a download killed halfway leaves no .deb a later run would take."""
    found = sorted(downloads.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    log = root / "fetch.log"
    options = _apt(root, suite, mirrors or debian_mirror.choose(), needed_by, log)
    downloads.mkdir(parents=True, exist_ok=True)
    drop_stale(downloads)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=PARTIAL) as partial:
        with open(log, "ab") as out:
            proc = subprocess.run(["apt-get", *options, "download", f"{package}/{suite}"], cwd=partial, stdout=out,
                                  stderr=subprocess.STDOUT, check=False)
        fetched = sorted(Path(partial).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not fetched:
            raise UsageError(f"apt-get download {package}/{suite} failed; full log: {log}")
        os.replace(fetched[-1], downloads / fetched[-1].name)
    return downloads / fetched[-1].name


PARTIAL = ".partial-"  # what a process writes before it is whole; only ever renamed into place


def drop_stale(directory: Path, kind: str = "") -> None:
    """What killed processes left half-written (called under the lock its writers take, so nobody is
    writing it now)."""
    for stale in directory.glob(PARTIAL + kind + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def write_atomically(path: Path, text: str) -> None:
    """A marker that says "whole" must never be seen half-written either."""
    temporary = path.with_name(PARTIAL + path.name)
    temporary.write_text(text)
    os.replace(temporary, path)


def _download_and_unpack(package: str, suite: str, target: Path, root: Path, mirrors: Mirrors | None,
                         needed_by: str) -> tuple[Path, str]:
    """The .deb of PACKAGE/SUITE in target/deb, unpacked with `dpkg-deb -x` into target/root.

    Unpacked beside, then renamed into place: an unpack killed halfway leaves no binary that looks whole."""
    deb = _download(package, suite, target / "deb", root, mirrors, needed_by)
    unpacked = target / "root"
    drop_stale(target)
    partial = Path(tempfile.mkdtemp(dir=target, prefix=PARTIAL))
    try:
        _run(["dpkg-deb", "-x", str(deb), str(partial)], root / "fetch.log", f"dpkg-deb -x {deb.name}")
        shutil.rmtree(unpacked, ignore_errors=True)
        os.replace(partial, unpacked)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return unpacked, deb.name.split("_")[1]


def fetch_suite(suite: str, root: Path | None = None, mirrors: Mirrors | None = None) -> Build:
    """docker.io from one Debian suite, downloaded and unpacked once into the cache."""
    if suite not in SUITES:
        raise UsageError(f"unknown Debian suite {suite!r}; known: {', '.join(SUITES)}")
    root = root or cache_root()
    done = root / f"debian-{suite}" / "build.json"
    if not done.exists():
        with cache_lock(root):
            if not done.exists():
                with progress.phase(f"fetching Debian {suite}'s docker.io for docker:{suite} (once: cached in "
                                    f"{root})"):
                    _unpack_suite(suite, root, mirrors, done)
    return Build(**json.loads(done.read_text()))


def _unpack_suite(suite: str, root: Path, mirrors: Mirrors | None, done: Path) -> None:
    unpacked, version = _download_and_unpack("docker.io", suite, root / f"debian-{suite}", root, mirrors,
                                             f"docker:{suite} (its docker.io)")
    dockerd = unpacked / "usr" / "sbin" / "dockerd"
    if not dockerd.exists():
        raise UsageError(f"docker.io {version} from {suite} holds no usr/sbin/dockerd")
    build = Build(version=version.split("+")[0].split("-")[0], dockerd=str(dockerd),
                  source=f"debian {suite} docker.io {version}")
    write_atomically(done, json.dumps(build.to_dict()))


@dataclass(frozen=True)
class Containerd:
    """containerd from a Debian suite, for a private dockerd to start instead of the host's."""

    version: str
    bin: str  # a directory holding only its containerd and containerd-shim-runc-v2 (first on dockerd's PATH)
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def fetch_containerd(suite: str, root: Path | None = None, mirrors: Mirrors | None = None) -> Containerd:
    """containerd of one Debian suite, unpacked once into the cache. Its runc stays the host's: sid's runc
    needs a newer glibc than Debian 12's, its containerd does not (a Go build needing only old symbols)."""
    if suite not in SUITES:
        raise UsageError(f"+containerd-from={suite}: unknown Debian suite; known: {', '.join(SUITES)}")
    root = root or cache_root()
    target = root / f"containerd-{suite}"
    done = target / "containerd.json"
    if not done.exists():
        with cache_lock(root):
            if not done.exists():
                with progress.phase(f"fetching Debian {suite}'s containerd (once: cached in {root})"):
                    unpacked, version = _download_and_unpack("containerd", suite, target, root, mirrors,
                                                             f"+containerd-from={suite} (its containerd)")
                bin_dir = target / "bin"
                shutil.rmtree(bin_dir, ignore_errors=True)
                bin_dir.mkdir()
                for name in ("containerd", "containerd-shim-runc-v2"):
                    binary = unpacked / "usr" / "bin" / name
                    if not binary.exists():
                        raise UsageError(f"containerd {version} from {suite} holds no usr/bin/{name}")
                    (bin_dir / name).symlink_to(binary)
                probe = subprocess.run([str(bin_dir / "containerd"), "--version"], capture_output=True, text=True,
                                       check=False)
                if probe.returncode != 0:
                    raise UsageError(f"containerd {version} from {suite} does not run on this host: "
                                     f"{(probe.stderr.strip().splitlines() or ['?'])[-1][:200]}")
                built = Containerd(version=version.split("+")[0].split("~")[0].split("-")[0], bin=str(bin_dir),
                                   source=f"debian {suite} containerd {version}")
                write_atomically(done, json.dumps(built.to_dict()))
    return Containerd(**json.loads(done.read_text()))


def fetch_deb(package: str, suite: str, root: Path | None = None, mirrors: Mirrors | None = None,
              needed_by: str | None = None) -> Path:
    """One .deb from a Debian suite (downloaded once into the cache), to install into a container offline."""
    root = root or cache_root()
    with cache_lock(root):
        return _download(package, suite, root / f"debs-{suite}", root, mirrors, needed_by or f"the .deb {package}")


COMPOSE_SUITE = "trixie"  # the first suite whose docker-compose is v2 (2.26.1); bookworm's is v1


def fetch_compose(root: Path | None = None, mirrors: Mirrors | None = None) -> Path:
    """Compose v2 from Debian's docker-compose package: a static CLI plugin that also runs on its own."""
    root = root or cache_root()
    target = root / f"compose-{COMPOSE_SUITE}"
    binary = target / "root" / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-compose"
    if not binary.exists():
        with cache_lock(root):
            if not binary.exists():
                with progress.phase(f"fetching Compose v2 from Debian {COMPOSE_SUITE} (once: cached in {root})"):
                    _, version = _download_and_unpack("docker-compose", COMPOSE_SUITE, target, root, mirrors,
                                                      "Compose v2 (docker-compose from Debian trixie)")
                if not binary.exists():
                    raise UsageError(f"docker-compose {version} from {COMPOSE_SUITE} holds no Compose v2 plugin "
                                     f"binary")
    return binary


def from_bundle(path: str) -> Build:
    """Any dockerd a user has: a binary, or a directory holding one (e.g. Docker's static bundle)."""
    candidate = Path(path)
    if candidate.is_dir():
        for sub in ("dockerd", "usr/sbin/dockerd", "usr/bin/dockerd", "bin/dockerd", "docker/dockerd"):
            if (candidate / sub).exists():
                candidate = candidate / sub
                break
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise UsageError(f"{path} is not an executable dockerd (nor a directory holding one)")
    proc = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=30, check=False)
    words = proc.stdout.split()
    version = words[2].rstrip(",").split("+")[0] if len(words) > 2 else "unknown"
    return Build(version=version, dockerd=str(candidate.resolve()), source=f"bundle {path}")
