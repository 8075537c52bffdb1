"""A small, signed Debian-layout repository made by the tests: a key of its own, tiny .debs, a signed
Release (InRelease and Release.gpg). apt checks it as it checks Debian's archive: never trusted=yes."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import subprocess
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Repo:
    root: Path  # serve this directory
    keyring: Path  # binary keyring, for signed-by
    armored_key: Path  # the same key, ASCII-armoured (for trusted.gpg.d in an image)
    suites: tuple[str, ...]
    packages: dict[str, str]  # name -> the file it installs


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--quiet", *args], input=stdin,
                          capture_output=True, check=True, timeout=120)
    return proc.stdout


def make_deb(out_dir: Path, name: str, version: str = "1.0") -> tuple[Path, str]:
    """A tiny arch:all package that installs /usr/share/NAME/hello (no maintainer scripts, no depends)."""
    tree = out_dir / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    payload = tree / "usr" / "share" / name / "hello"
    payload.parent.mkdir(parents=True)
    payload.write_text(f"hello from {name} {version}\n")
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: saveexport tests <t@saveexport.invalid>\n"
        f"Description: a tiny package for saveexport's mirror tests\n")
    deb = out_dir / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=60)
    return deb, f"/usr/share/{name}/hello"


def _hashes(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def make_repo(root: Path, suites=("bullseye",), packages=("setiny",), origin: str = "Debian",
              label: str = "Debian", keys: Path | None = None) -> Repo:
    """Every suite holds every package; the Release says Origin/Label as Debian's archive does.

    `keys`: where the keyrings go; apt reads them as its unprivileged _apt user (mmdebstrap too), so
    a test that lets apt verify with them must put them where that user can read."""
    home = root.parent / (root.name + "-gnupg")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _gpg(home, "--passphrase", "", "--quick-gen-key", "saveexport test repository <repo@saveexport.invalid>",
         "ed25519", "sign", "never")
    keys = keys or root.parent
    keyring = keys / (root.name + "-keyring.gpg")
    keyring.write_bytes(_gpg(home, "--export"))
    armored = keys / (root.name + "-key.asc")
    armored.write_bytes(_gpg(home, "--armor", "--export"))
    pool = root / "pool" / "main"
    pool.mkdir(parents=True)
    installed = {}
    stanzas = []
    for name in packages:
        deb, path = make_deb(pool, name)
        installed[name] = path
        size, sha = _hashes(deb)
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
        stanzas.append(control.strip() + f"\nFilename: pool/main/{deb.name}\nSize: {size}\nSHA256: {sha}\n")
    for suite in suites:
        dists = root / "dists" / suite
        binary = dists / "main" / "binary-amd64"
        binary.mkdir(parents=True)
        (binary / "Packages").write_text("\n".join(stanzas))
        (binary / "Packages.gz").write_bytes(gzip.compress((binary / "Packages").read_bytes(), mtime=0))
        lines = [f"Origin: {origin}", f"Label: {label}", f"Suite: {suite}", f"Codename: {suite}",
                 f"Date: {email.utils.formatdate(usegmt=True)}", "Architectures: amd64", "Components: main",
                 "Description: saveexport test repository", "SHA256:"]
        for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.gz"):
            size, sha = _hashes(dists / rel)
            lines.append(f" {sha} {size:>8} {rel}")
        release = "\n".join(lines) + "\n"
        (dists / "Release").write_text(release)
        (dists / "InRelease").write_bytes(_gpg(home, "--clearsign", "--digest-algo", "SHA256", stdin=release.encode()))
        (dists / "Release.gpg").write_bytes(_gpg(home, "--armor", "--detach-sign", "--digest-algo", "SHA256",
                                                 stdin=release.encode()))
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
    return Repo(root, keyring, armored, tuple(suites), installed)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.requests.append(self.path)


class Server:
    """Serves a directory on 127.0.0.1 and records every path asked (in this process's network)."""

    def __init__(self, directory: Path):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def apt_conf(directory: Path, sources: str, *, extra: str = "") -> dict[str, str]:
    """An apt configuration of the test's own (APT_CONFIG): its sources, parts and lists directories."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sources.list").write_text(sources)
    (directory / "sources.list.d").mkdir(exist_ok=True)
    (directory / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    conf = directory / "apt.conf"
    conf.write_text(f'Dir::Etc::sourcelist "{directory}/sources.list";\n'
                    f'Dir::Etc::sourceparts "{directory}/sources.list.d";\n'
                    f'Dir::State::lists "{directory}/lists";\n' + extra)
    return dict(os.environ, APT_CONFIG=str(conf))
