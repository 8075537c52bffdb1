"""First contact with an engine: whatever API range it accepts, without guessing a version.

A small HTTP server on 127.0.0.1 plays the daemon: like Docker 29, it refuses every versioned path
below its floor with HTTP 400, and answers the unversioned /_ping and /version.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from saveexport.engines import CLIENT_MAX_API, CLIENT_MIN_API, Engine, negotiate
from saveexport.errors import EngineIncompatible, EngineUnavailable

ROOT = Path(__file__).resolve().parents[1]


def _api(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class FakeDaemon(ThreadingHTTPServer):
    """Answers like dockerd with its API range set to [oldest, newest]; records every path asked."""

    daemon_threads = True

    def __init__(self, oldest: str, newest: str, docker_like: bool = True):
        self.oldest, self.newest, self.docker_like = oldest, newest, docker_like
        self.paths: list[str] = []
        self.refused: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"

    def version_document(self) -> dict:
        return {"Version": "29.0.0", "ApiVersion": self.newest, "MinAPIVersion": self.oldest, "Os": "linux",
                "Arch": "amd64", "KernelVersion": "6.1.0", "Components": [{"Name": "Engine", "Version": "29.0.0"}]}


class _Handler(BaseHTTPRequestHandler):
    server: FakeDaemon

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.paths.append(self.path)
        if not server.docker_like:
            return self._send(404, "404 page not found\n", "text/plain")
        path = self.path
        if versioned := re.match(r"/v(\d+\.\d+)(/.*)$", path):
            version, path = versioned.groups()
            if _api(version) < _api(server.oldest):
                server.refused.append(version)
                return self._send(400, {"message": f"client version {version} is too old. Minimum supported API "
                                                   f"version is {server.oldest}, please upgrade your client to a "
                                                   f"newer version"})
            if _api(version) > _api(server.newest):
                server.refused.append(version)
                return self._send(400, {"message": f"client version {version} is too new. Maximum supported API "
                                                   f"version is {server.newest}"})
        if path.split("?")[0] == "/_ping":
            return self._send(200, "OK", "text/plain")
        if path.split("?")[0] == "/version":
            return self._send(200, server.version_document())
        if path.split("?")[0] == "/info":
            return self._send(200, {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]})
        return self._send(404, {"message": "page not found"})


@pytest.fixture
def fake_daemon(request):
    oldest, newest, *rest = getattr(request, "param", ("1.44", "1.52"))
    server = FakeDaemon(oldest, newest, *rest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_engine_with_a_raised_floor_is_spoken_to_at_a_version_it_accepts(fake_daemon):
    engine = Engine.connect(fake_daemon.endpoint, timeout=10)
    try:
        facts = engine.facts
        assert engine.api._version == min(CLIENT_MAX_API, "1.52", key=_api)
        assert _api(engine.api._version) >= _api("1.44")
        assert (facts.version, facts.min_api_version, facts.api_version) == ("29.0.0", "1.44", "1.52")
        assert facts.client_api_version == engine.api._version
        assert engine.client.info()["Driver"] == "overlay2"
    finally:
        engine.close()
    # the first contact guessed no version: nothing was refused, and /_ping and /version came unversioned
    assert fake_daemon.refused == []
    assert fake_daemon.paths[:2] == ["/_ping", "/version"]


def test_the_version_spoken_is_capped_at_the_engines_newest(fake_daemon):
    fake_daemon.oldest, fake_daemon.newest = "1.24", "1.41"  # Podman 4's compatible API, Docker 20.10
    engine = Engine.connect(fake_daemon.endpoint, timeout=10)
    try:
        assert engine.api._version == "1.41" and engine.client.info()
    finally:
        engine.close()
    assert fake_daemon.refused == []


ABOVE_US = f"1.{_api(CLIENT_MAX_API)[1] + 5}"  # a floor above the newest API the installed docker-py speaks


@pytest.mark.parametrize("fake_daemon, words", [
    ((ABOVE_US, "1.99"), f"requires API {ABOVE_US} or newer; this client (docker-py {{sdk}}) speaks API "
                         f"{CLIENT_MIN_API} to {CLIENT_MAX_API}"),
    (("1.12", "1.20"), f"speaks API 1.12 to 1.20; this client"),
], indirect=["fake_daemon"])
def test_an_engine_we_cannot_speak_to_says_what_it_requires_and_what_we_speak(fake_daemon, words):
    import docker

    with pytest.raises(EngineIncompatible) as caught:
        Engine.connect(fake_daemon.endpoint, timeout=10)
    message = str(caught.value)
    assert "\n" not in message
    assert words.format(sdk=docker.__version__) in message
    assert "Docker 29.0.0 at " + fake_daemon.endpoint in message
    assert "no container engine answers" not in message


@pytest.mark.parametrize("fake_daemon", [("1.24", "1.44", False)], indirect=True)
def test_something_that_answers_but_is_no_engine_is_named_so(fake_daemon):
    with pytest.raises(EngineUnavailable, match="answers at .*, but not as a container engine") as caught:
        Engine.connect(fake_daemon.endpoint, timeout=10)
    assert not isinstance(caught.value, EngineIncompatible) and "\n" not in str(caught.value)


def test_nothing_listening_is_still_nothing_answers():
    with pytest.raises(EngineUnavailable, match="no container engine answers at tcp://127.0.0.1:9"):
        Engine.connect("tcp://127.0.0.1:9", timeout=5)


@pytest.mark.parametrize("server, client_max, expected", [
    ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "1.44", "1.44"),
    ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "1.51", "1.51"),
    ({"ApiVersion": "1.41", "MinAPIVersion": "1.12"}, "1.44", "1.41"),
    ({"ApiVersion": "1.45"}, "1.44", None),  # no MinAPIVersion: only its newest is known to work
    ({"ApiVersion": "1.9", "MinAPIVersion": "1.9"}, "1.44", None),  # numbers, not strings: 1.9 < 1.24
    ({"ApiVersion": "1.100", "MinAPIVersion": "1.24"}, "1.44", "1.44"),
])
def test_negotiation_compares_versions_as_numbers(server, client_max, expected):
    if expected is None:
        with pytest.raises(EngineIncompatible):
            negotiate(server, "unix:///x.sock", client_max=client_max, client_min="1.24")
    else:
        assert negotiate(server, "unix:///x.sock", client_max=client_max, client_min="1.24") == expected


def test_the_command_line_and_the_engine_script_reach_a_raised_floor(fake_daemon):
    env = dict(os.environ, DOCKER_HOST=fake_daemon.endpoint)
    script = subprocess.run(["bash", str(ROOT / "scripts" / "engine"), "status"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0, script.stdout + script.stderr
    assert "Docker 29.0.0 (API 1.44 to 1.52)" in script.stdout
    cli = subprocess.run([sys.executable, "-m", "saveexport.cli", "engine", "--docker-host", fake_daemon.endpoint],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "docker 29.0.0" in cli.stdout and "API 1.44" in cli.stdout
    assert fake_daemon.refused == []


@pytest.mark.parametrize("fake_daemon", [(ABOVE_US, "1.99")], indirect=True)
def test_the_command_line_says_in_one_line_what_an_engine_requires(fake_daemon):
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "engine", "--docker-host", fake_daemon.endpoint],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"requires API {ABOVE_US} or newer" in proc.stderr


@pytest.mark.parametrize("fake_daemon", [("1.24", "1.44", False)], indirect=True)
def test_the_engine_script_names_something_that_is_no_engine(fake_daemon):
    env = dict(os.environ, DOCKER_HOST=fake_daemon.endpoint)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "engine"), "up"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "but not as a container engine" in proc.stderr
