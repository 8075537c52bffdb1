"""The record of every engine call (calls.py), made through the real docker-py stack against a small
HTTP server on a unix socket that answers as an engine does: every request in order, with its test,
its body as sent, its status and its cost; nothing when recording is off."""

from __future__ import annotations

import socketserver
import threading
from pathlib import Path

import pytest

from saveexport import calls
from saveexport.engines import Engine

from fake_engine import JsonHandler


class _Engine(JsonHandler):
    def do_GET(self):  # noqa: N802 (http.server's names)
        if self.path.endswith("/_ping"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        elif self.path.endswith("/version"):
            self._json(200, {"Version": "99.0.0", "ApiVersion": "1.44", "MinAPIVersion": "1.24"})
        elif "/containers/json" in self.path:
            self._json(200, [{"Id": "f00d" * 16, "Names": ["/db-1"]}])
        elif "/containers/nope/json" in self.path:
            self._json(404, {"message": "No such container: nope"})
        else:
            self._json(200, [])

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(201, {"Id": "c0ffee", "Warnings": []})


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port)


@pytest.fixture
def fake_engine(tmp_path):
    path = Path("/tmp") / f"saveexport-calls-{id(tmp_path)}.sock"  # a unix socket path must stay short
    server = _UnixServer(str(path), _Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"unix://{path}"
    server.shutdown()
    server.server_close()
    path.unlink(missing_ok=True)


def test_every_request_is_recorded_in_order_with_its_test_body_and_status(fake_engine, tmp_path):
    calls.start(tmp_path / "calls", "gw7")
    try:
        engine = Engine.connect(fake_engine)
        engine.api.create_container("example:1", command=["echo", "hi"], name="c1")
        engine.api.images()
        with pytest.raises(Exception):
            engine.api.inspect_container("nope")
        engine.close()
    finally:
        calls.stop()
    entries = calls.read([tmp_path / "calls" / "calls-gw7.jsonl"])
    made = [(e["method"], e["path"]) for e in entries]
    assert made == [("GET", "/_ping"), ("GET", "/version"),  # the first contact, unversioned
                    ("POST", "/containers/create"), ("GET", "/images/json"), ("GET", "/containers/nope/json")]
    assert entries[0]["api"] == entries[1]["api"] == ""
    entries = entries[2:]
    create = entries[0]
    assert create["api"] == "1.44" and create["params"] == {"name": "c1"}
    assert create["body"]["Image"] == "example:1" and create["body"]["Cmd"] == ["echo", "hi"]
    assert [e["status"] for e in entries] == [201, 200, 404]
    assert [e["seq"] for e in entries] == [3, 4, 5]
    assert all(e["endpoint"] == fake_engine and e["seconds"] >= 0 for e in entries)
    assert create["test"] == "tests/test_calls.py::test_every_request_is_recorded_in_order_with_its_test_body_and_status"
    assert create["made"] == "c0ffee"  # what later requests name it by


def test_an_archive_stream_on_a_socket_of_its_own_is_timed_to_its_end_with_its_file(tmp_path):
    calls.start(tmp_path, "main")
    try:
        with calls.note(file="/tmp/a.tar"), calls.timed("unix:///x.sock", "GET", "/images/get", {"names": ["a:1"]}):
            pass
        with pytest.raises(OSError):
            with calls.timed("unix:///x.sock", "POST", "/images/load", None):
                raise OSError("no space left on device")
    finally:
        calls.stop()
    saved, loaded = calls.read([tmp_path / "calls-main.jsonl"])
    assert (saved["path"], saved["file"], saved["stream"], saved["status"]) == ("/images/get", "/tmp/a.tar", True, 200)
    assert saved["params"] == {"names": ["a:1"]}
    assert loaded["error"] == "OSError" and "file" not in loaded  # the note ended with its block


def test_a_small_body_is_kept_whole_a_large_one_only_as_a_kind():
    import base64
    import io

    assert calls._body(b"FROM x\n") == {"base64": base64.b64encode(b"FROM x\n").decode()}
    assert calls._body(io.BytesIO(b"tar bytes")) == {"base64": base64.b64encode(b"tar bytes").decode()}
    assert calls._body(io.BytesIO(b"0" * (calls.SMALL + 1))) == {"stream": "BytesIO"}
    assert calls._body('{"Image": "x"}') == {"Image": "x"}
    import tempfile

    with tempfile.NamedTemporaryFile() as context:  # how docker-py hands over a build's context
        context.write(b"a small context")
        context.seek(0)
        assert calls._body(context) == {"base64": base64.b64encode(b"a small context").decode()}
        assert context.tell() == 0  # left where it was, for the request to send


def test_nothing_is_recorded_when_recording_is_off(fake_engine, tmp_path):
    engine = Engine.connect(fake_engine)
    engine.api.images()
    engine.close()
    assert not list(tmp_path.iterdir())


def test_a_docker_py_url_gives_its_api_version_and_path():
    assert calls.path_of("http+docker://localhost/v1.41/containers/create") == ("1.41", "/containers/create")
    assert calls.path_of("http+docker://localhost/_ping") == ("", "/_ping")
    assert calls.path_of("http+docker://localhost/version") == ("", "/version")


def test_a_deliberate_wait_is_recorded_with_its_length_and_test(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "t.py::test_waits (call)")
    calls.pause(0.01)  # not recording: only the sleep
    calls.start(tmp_path, "main")
    try:
        calls.pause(0.02)
    finally:
        calls.stop()
    [entry] = calls.read([tmp_path / "calls-main.jsonl"])
    assert entry["method"] == "SLEEP" and entry["seconds"] == 0.02 and entry["test"] == "t.py::test_waits"


def test_a_listing_keeps_the_ids_it_found(fake_engine, tmp_path):
    """A test that finds compose's container by its labels and exports it names an id the replay must find
    the same way."""
    calls.start(tmp_path, "main")
    try:
        engine = Engine.connect(fake_engine)
        engine.api.containers(all=True, filters={"label": ["com.docker.compose.project=p"]})
        engine.api.images()
        engine.close()
    finally:
        calls.stop()
    listed = {e["path"]: e for e in calls.read([tmp_path / "calls-main.jsonl"])}
    assert listed["/containers/json"]["found"] == ["f00d" * 16]
    assert "found" not in listed["/images/json"]  # an empty listing found nothing


def test_compose_commands_through_pytest_docker_are_recorded_while_recording(tmp_path, monkeypatch):
    import pytest_docker.plugin as pytest_docker

    original = pytest_docker.execute
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "t.py::test_compose (setup)")
    calls.start(tmp_path, "main")
    try:
        assert pytest_docker.execute("echo up") == b"up\n"  # it still runs, as pytest-docker ran it
        with pytest.raises(Exception):
            pytest_docker.execute("exit 3")
        with calls.cli(["docker", "compose", "-f", "a file.yaml", "config"]):
            pass
    finally:
        calls.stop()
    assert pytest_docker.execute is original  # nothing of the recording stays in pytest-docker
    entries = calls.read([tmp_path / "calls-main.jsonl"])
    assert [(e["method"], e["command"]) for e in entries] == [
        ("CLI", "echo up"), ("CLI", "exit 3"), ("CLI", "docker compose -f 'a file.yaml' config")]
    assert entries[1]["error"] == "Exception" and "error" not in entries[0]
    assert all(e["test"] == "t.py::test_compose" and e["seconds"] >= 0 for e in entries)
