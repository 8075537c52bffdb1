"""The whole path from apt's configuration to every kind of fetch, against a mirror the test makes.

A network namespace with only `lo` holds a small signed Debian-layout repository served on
127.0.0.1. apt's configuration (APT_CONFIG) names it; nothing names a mirror otherwise. Inside the
namespace the suite's own code fetches a .deb (as the C7 experiment does), makes an mmdebstrap root,
and builds a Dockerfile whose RUN apt-get installs from it on a private engine whose containers
share that network. There is nowhere else to fetch from, so every fetch went there. Run twice: with the repository named
directly, and named by a host name that does not resolve, reachable only through the proxy apt's
configuration names (Acquire::http::Proxy), so every fetch that arrives came through apt's proxy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from debrepo import apt_conf, make_repo
from saveexport.daemons import PrivateDockerd
from saveexport.debian_mirror import choose
from saveexport.engines import Engine
from saveexport.standin import ensure_base

PORT = 8765
SUITE = "bullseye"


def _in_ns(ns: str, code: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the offline mirror test needs root and iproute2 (ip netns)", pytrace=False)
    name = f"se-mirror-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "netns", "exec", name, "ip", "-o", "link", "show"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        assert [line.split(":")[1].strip() for line in links] == ["lo"]
        routes = subprocess.run(["ip", "netns", "exec", name, "ip", "route", "show"], capture_output=True, text=True,
                                check=True).stdout
        assert routes.strip() == ""  # no way out
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


PROXY = """
import sys, urllib.parse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Proxy(SimpleHTTPRequestHandler):
    # apt asks a proxy for absolute URLs: every host it names is the test repository
    def translate_path(self, path):
        return super().translate_path(urllib.parse.urlsplit(path).path if "://" in path else "/nowhere" + path)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), partial(Proxy, directory=sys.argv[1])).serve_forever()
"""
PROXY_PORT = 3142
UNRESOLVABLE = "http://debian.mirror.saveexport.invalid"  # reachable through the proxy alone


@pytest.fixture(scope="module", params=["direct", "through apt's proxy"])
def mirror(request, netns, tmp_path_factory):
    """The signed repository, served inside the namespace, named by apt's configuration: directly, or
    by a host name that does not resolve, reachable only through the proxy apt's configuration sets."""
    base = tmp_path_factory.mktemp("mirror")
    keys = Path(tempfile.mkdtemp(prefix="saveexport-test-keys-"))  # readable by apt's _apt user, as keyrings are
    keys.chmod(0o755)
    repo = make_repo(base / "repo", suites=(SUITE,), packages=("setiny", "setiny2", "setiny3"), keys=keys)
    log = base / "http.log"
    proxied = request.param != "direct"
    (base / "proxy.py").write_text(PROXY)
    argv = ([sys.executable, str(base / "proxy.py"), str(repo.root), str(PROXY_PORT)] if proxied else
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(repo.root), str(PORT)])
    with open(log, "w") as out:
        server = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdout=out, stderr=subprocess.STDOUT)
    port = PROXY_PORT if proxied else PORT
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).close()"
    for _ in range(50):
        if _in_ns(netns, probe, dict(os.environ), timeout=30).returncode == 0:
            break
        time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"the test mirror did not answer: {log.read_text()[-500:]}")
    url = UNRESOLVABLE if proxied else f"http://127.0.0.1:{PORT}"
    extra = f'Acquire::http::Proxy "http://127.0.0.1:{PROXY_PORT}";\n' if proxied else ""
    env = apt_conf(base / "apt", f"deb [signed-by={repo.keyring}] {url}/ {SUITE} main\n", extra=extra)
    env["SAVEEXPORT_ENGINE_CACHE"] = str(base / "cache")
    for name in ("SAVEEXPORT_DEBIAN_MIRROR", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env.pop(name, None)
    repo.env, repo.log, repo.url, repo.proxied = env, log, url, proxied
    yield repo
    server.terminate()
    server.wait(timeout=10)
    shutil.rmtree(keys, ignore_errors=True)


def _asked(repo, path: str) -> bool:
    """The server (or the proxy, asked for the mirror's URL) answered this path."""
    asked = f"{repo.url}{path}" if repo.proxied else path
    return f'"GET {asked} HTTP/1.1" 200' in repo.log.read_text()


def test_the_deb_fetch_goes_to_apts_mirror_and_checks_its_signature(netns, mirror, tmp_path):
    code = ("from saveexport.debian_mirror import choose; from saveexport.provision import fetch_deb\n"
            "mirrors = choose(); deb = fetch_deb('setiny', 'bullseye', mirrors=mirrors)\n"
            "print(deb); print(mirrors.describe())")
    proc = _in_ns(netns, code, mirror.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deb, described = proc.stdout.strip().splitlines()[-2:]
    assert Path(deb).name == "setiny_1.0_all.deb" and Path(deb).is_file()
    assert described == f"Debian mirror {mirror.url}, from apt's configuration ({mirror.env['APT_CONFIG'][:-8]}" \
                        f"sources.list:1)" + (f", through proxy http://127.0.0.1:{PROXY_PORT}" if mirror.proxied else "")
    assert _asked(mirror, f"/dists/{SUITE}/InRelease") and _asked(mirror, "/pool/main/setiny_1.0_all.deb")
    # the signature counts: with another key the same fetch is refused, in one line
    stranger = make_repo(tmp_path / "stranger", suites=(SUITE,))
    env = apt_conf(tmp_path / "apt", f"deb [signed-by={stranger.keyring}] {mirror.url}/ {SUITE} main\n",
                   extra=f'Acquire::http::Proxy "http://127.0.0.1:{PROXY_PORT}";\n' if mirror.proxied else "")
    env["SAVEEXPORT_ENGINE_CACHE"] = str(tmp_path / "cache")
    code = ("from saveexport.debian_mirror import choose; from saveexport.provision import fetch_deb\n"
            "from saveexport.errors import SaveexportError\n"
            "try:\n    fetch_deb('setiny', 'bullseye', mirrors=choose())\n"
            "except SaveexportError as exc:\n    print('REFUSED', exc)\n")
    proc = _in_ns(netns, code, env)
    assert "REFUSED apt-get update of Debian bullseye from" in proc.stdout, proc.stdout + proc.stderr


def test_an_mmdebstrap_root_comes_from_apts_mirror(netns, mirror, tmp_path):
    out = tmp_path / "root.tar"
    code = ("from pathlib import Path; from saveexport.debian_mirror import choose; "
            "from saveexport.standin import make_root\n"
            f"make_root('bullseye', Path({str(out)!r}), choose(), needed_by='the test root', "
            f"log_path=Path({str(tmp_path / 'mmdebstrap.log')!r}), variant='extract', "
            f"include=('setiny', 'setiny2'), container_settings=False)")
    proc = _in_ns(netns, code, mirror.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "mmdebstrap.log").read_text()[-2000:]
    with tarfile.open(out) as tar:
        names = {n.lstrip("./") for n in tar.getnames()}
        sources = tar.extractfile(next(m for m in tar.getmembers()
                                       if m.name.lstrip("./") == "etc/apt/sources.list")).read() \
            if "etc/apt/sources.list" in names else b""
    assert {"usr/share/setiny/hello", "usr/share/setiny2/hello"} <= names
    assert mirror.url.encode() not in sources  # the root keeps no mirror
    assert _asked(mirror, "/pool/main/setiny2_1.0_all.deb")


def test_a_dockerfile_apt_get_install_comes_from_apts_mirror(netns, mirror, tmp_path):
    main = Engine.connect()
    try:
        base_ref = ensure_base(main, cache_dir=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") /
                               "saveexport", suite=SUITE, mirrors=choose())  # the suite's own cached base
        daemon = PrivateDockerd(name=f"se-mirror-{os.getpid()}", dockerd=shutil.which("dockerd") or "/usr/sbin/dockerd",
                                index=11, netns=netns)  # its build containers share the namespace's network
        try:
            engine = Engine.connect(daemon.start())
            for message in engine.api.load_image(main.api.get_image(base_ref)):
                assert "error" not in message, message
            context = tmp_path / "context"
            context.mkdir()
            shutil.copy(mirror.armored_key, context / "repo-key.asc")
            (context / "Dockerfile").write_text(
                "ARG BASE\nFROM ${BASE}\nARG DEBIAN_SOURCE\n"
                "COPY repo-key.asc /etc/apt/trusted.gpg.d/saveexport-test.asc\n"
                'RUN set -eux; echo "$DEBIAN_SOURCE" >/etc/apt/sources.list.d/saveexport.list; apt-get update; '
                "apt-get install -y --no-install-recommends setiny3; "
                "rm -rf /var/lib/apt/lists/* /etc/apt/sources.list.d/saveexport.list\n")
            code = ("import json; from saveexport.debian_mirror import choose; from saveexport.engines import Engine\n"
                    "from saveexport.standin import build, build_args\n"
                    f"engine = Engine.connect({daemon.endpoint!r}); mirrors = choose()\n"
                    f"args = dict(build_args(mirrors, 'bullseye', 'the test build'), BASE={base_ref!r})\n"
                    f"print(json.dumps([build(engine, {str(context)!r}, 'se-mirror-test:1', args, 'test', "
                    f"__import__('pathlib').Path({str(tmp_path)!r})), args]))")
            proc = _in_ns(netns, code, mirror.env)
            assert proc.returncode == 0, proc.stdout + proc.stderr + "".join(
                p.read_text()[-2000:] for p in tmp_path.glob("build-*.log"))
            image_id, args = json.loads(proc.stdout.strip().splitlines()[-1])
            assert args["DEBIAN_SOURCE"] == f"deb {mirror.url} {SUITE} main"
            assert args.get("http_proxy") == (f"http://127.0.0.1:{PROXY_PORT}" if mirror.proxied else None)
            history = " ".join(h.get("CreatedBy") or "" for h in engine.api.history(image_id))
            assert "DEBIAN_SOURCE=" in history and "http_proxy" not in history  # Docker keeps proxies out
            container = engine.api.create_container(image_id, command=["true"], network_disabled=True)
            try:
                stream, _ = engine.api.get_archive(container, "/usr/share/setiny3/hello")
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    assert tar.extractfile("hello").read() == b"hello from setiny3 1.0\n"
                sources, _ = engine.api.get_archive(container, "/etc/apt/sources.list.d")
                with tarfile.open(fileobj=io.BytesIO(b"".join(sources))) as tar:
                    assert "sources.list.d/saveexport.list" not in tar.getnames()  # the build's source is gone
            finally:
                engine.api.remove_container(container, force=True)
            engine.close()
        finally:
            daemon.stop()
    finally:
        main.close()
    assert _asked(mirror, "/pool/main/setiny3_1.0_all.deb")  # only the build asks for this one
