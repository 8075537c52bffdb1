"""Archive streams on a socket of their own, against a small HTTP server on 127.0.0.1 that plays the
daemon: refusals keep docker-py's exception types, messages split anywhere are read whole, and a
daemon that goes silent is cut after the stall timeout (no engine process to judge by here)."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

import docker.errors
import pytest

from saveexport import streams

from fake_engine import JsonHandler


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if "no-such-image" in self.path:
            return self._json(404, {"message": "No such image: saveexport-x:1"})
        if "no-such-container" in self.path:
            return self._json(404, {"message": "No such container: saveexport-x"})
        if "broken" in self.path:
            return self._json(500, {"message": "something inside broke"})
        if "silent" in self.path:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"4\r\ndata\r\n")
            self.wfile.flush()
            time.sleep(30)  # then nothing: a hung daemon
            return None
        self.send_response(200)
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b"hello world")

    def do_POST(self):  # noqa: N802
        length = int(self.headers["Content-Length"])
        received = 0
        while received < length:
            received += len(self.rfile.read(min(65536, length - received)))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # JSON messages split across chunks, as a daemon's writes fall
        payload = (json.dumps({"stream": f"read {received} bytes\n"}) + json.dumps({"stream": "Loaded image: x:1\n"})
                   ).encode()
        for piece in (payload[:7], payload[7:40], payload[40:]):
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class _Engine:
    """What a stream needs of an Engine: endpoint, API version, pid (none: a remote daemon), a label."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.api = type("Api", (), {"_version": "1.41"})()
        self.pid = None
        self.label_for_faults = "the-test-daemon"


@pytest.fixture
def daemon():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _Engine(f"tcp://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path, cls, status", [
    ("/images/no-such-image/get", docker.errors.ImageNotFound, 404),
    ("/containers/no-such-container/export", docker.errors.NotFound, 404),
    ("/broken", docker.errors.APIError, 500),
])
def test_refusals_are_docker_pys_own_exceptions(daemon, path, cls, status):
    with pytest.raises(docker.errors.APIError) as caught, streams.Stream(daemon, "save", 30, 30) as stream:
        b"".join(stream.get(path))
    assert type(caught.value) is cls and caught.value.status_code == status
    assert caught.value.explanation in ("No such image: saveexport-x:1", "No such container: saveexport-x",
                                        "something inside broke")


def test_a_body_is_read_whole_and_counted(daemon):
    with streams.Stream(daemon, "save", 30, 30) as stream:
        assert b"".join(stream.get("/images/get", {"names": ["a:1", "b:2"]})) == b"hello world"
        assert stream.watchdog.moved == 11


def test_an_upload_and_messages_split_anywhere(daemon, tmp_path):
    archive = tmp_path / "x.tar"
    archive.write_bytes(b"\0" * 300_000)
    with open(archive, "rb") as source, streams.Stream(daemon, "load", 30, 30) as stream:
        messages = list(stream.post_file("/images/load", None, source))
    assert messages == [{"stream": "read 300000 bytes\n"}, {"stream": "Loaded image: x:1\n"}]


def test_a_silent_daemon_is_cut_after_the_stall_timeout(daemon):
    started = time.monotonic()
    with pytest.raises(streams.Stalled) as caught, streams.Stream(daemon, "save", 1, 60) as stream:
        b"".join(stream.get("/silent"))
    waited = time.monotonic() - started
    assert caught.value.fault.kind == "unresponsive"
    assert str(caught.value) == "no progress for 1 s; the engine the-test-daemon is unresponsive during save"
    assert 1 <= waited < 5  # not the 60 s socket timeout


SERVE = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(4)
print("listening", flush=True)
time.sleep(60)
"""


def test_the_containerd_a_daemon_was_handed_is_watched_with_it(tmp_path):
    """A private dockerd runs on a containerd that is not its child (own_containerd.py): the process serving
    the socket its `--containerd` names is found, and its work counts as the engine's."""
    import subprocess
    import sys

    address = tmp_path / "ctd.sock"
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(address)], stdout=subprocess.PIPE, text=True)
    daemon = subprocess.Popen(["sh", "-c", "sleep 60; :", "dockerd", "--containerd", str(address)])
    other = subprocess.Popen(["sh", "-c", "sleep 60; :", "podman", "system", "service"])
    try:
        assert server.stdout.readline().strip() == "listening"
        assert streams.containerd_of(daemon.pid) == server.pid
        assert streams.containerd_of(other.pid) is None  # no --containerd, not a dockerd
        _, _, states = streams.activity(daemon.pid, server.pid)
        assert {pid for pid, _ in states} >= {daemon.pid, server.pid}
    finally:
        for process in (server, daemon, other):
            process.kill()
            process.wait()
        server.stdout.close()
