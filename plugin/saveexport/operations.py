"""save, export, load, import, commit, run and exec — each returns an Outcome, never raises for the
daemon's refusal, so an experiment can record what happened whatever it was.

Archives are streamed between the engine and files in 1 MiB chunks; nothing holds one in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import docker.errors
import requests.exceptions

from . import calls, faults, streams
from .engines import Engine
from .errors import SaveexportError
from .isolation import RunScope, short_tag

STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$", re.MULTILINE)  # the classic builder's step result

CHUNK = 1 << 20
DEFAULT_STALL_S = 120  # no bytes and no work by the engine's processes for this long: hung (well under 900 s)
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


@dataclass
class Outcome:
    """What one operation did: ok or not, the exception's type, the daemon's own words, cost."""

    op: str
    ok: bool
    error_type: str | None = None
    status_code: int | None = None
    message: str | None = None
    duration_s: float = 0.0
    bytes: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return not self.ok

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Attempt:
    """Times a block and keeps the engine's refusal (a typed docker-py error) instead of raising it.

    A failure the daemon did not answer (a broken connection, no HTTP status) is judged: if the engine
    itself died, went away or is stopped, the outcome says that (faults.py), not urllib3's words."""

    def __init__(self, op: str, engine: Engine | None = None):
        self.op = op
        self.engine = engine
        self.error: BaseException | None = None
        self.seconds = 0.0

    def __enter__(self) -> _Attempt:
        self.start = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.seconds = round(time.monotonic() - self.start, 3)
        if exc is not None and isinstance(exc, (*ENGINE_ERRORS, NoSpace)):
            self.error = exc
            return True
        return False

    def failure(self, **result: Any) -> Outcome:
        exc = self.error
        status = getattr(getattr(exc, "response", None), "status_code", None)
        message = getattr(exc, "explanation", None) or str(exc)
        error_type = f"{type(exc).__module__}.{type(exc).__name__}"
        if isinstance(exc, NoSpace):
            error_type = "saveexport.NoSpace"
        elif isinstance(exc, streams.Stalled) and self.engine is not None:
            self.engine.fault = exc.fault
            error_type = f"saveexport.Engine{exc.fault.kind.capitalize()}"
        elif status is None and self.engine is not None and not isinstance(exc, StreamError):
            fault = self.engine.fault or faults.diagnose(self.engine, during=self.op)
            if fault is not None:
                self.engine.fault = fault if fault.lasting else None
                result = dict(result, error=f"{error_type}: {str(message).strip()[:300]}")
                error_type, message = f"saveexport.Engine{fault.kind.capitalize()}", fault.line
        return Outcome(op=self.op, ok=False, error_type=error_type, status_code=status, message=str(message).strip(),
                       duration_s=self.seconds, result=result)


class StreamError(docker.errors.APIError):
    """An error the daemon reported inside a 200 response's JSON stream (load, import)."""

    def __init__(self, message: str):
        super().__init__(message, explanation=message)


class Operations:
    """The engine verbs the article uses, bound to one engine and one run's namespace."""

    def __init__(self, engine: Engine, scope: RunScope, stall_s: float = DEFAULT_STALL_S):
        self.engine = engine
        self.api = engine.api
        self.scope = scope
        self.stall_s = stall_s
        self.last_stream: streams.Stream | None = None

    def _attempt(self, op: str) -> _Attempt:
        return _Attempt(op, self.engine)

    @contextlib.contextmanager
    def _download(self, op: str, path: str, params: dict[str, Any] | None = None, file: Path | None = None):
        """The body of GET path, in chunks: on a watched socket of its own where the endpoint allows."""
        if streams.supported(self.engine):
            with calls.note(file=file), calls.timed(self.engine.endpoint, "GET", path, params), \
                    streams.Stream(self.engine, op, self.stall_s, self.api.timeout) as stream:
                self.last_stream = stream
                yield stream.get(path, params)
            return
        with calls.note(file=file):
            res = self.api._get(self.api._url(path), params=params, stream=True)
        with contextlib.closing(res):  # also when the write fails half-way (a full disk)
            self.api._raise_for_status(res)
            yield res.iter_content(CHUNK)

    @contextlib.contextmanager
    def _upload(self, op: str, path: str, params: dict[str, Any] | None, source, content_type: str):
        """POST a file, then the daemon's JSON messages: watched where the endpoint allows."""
        if streams.supported(self.engine):
            with calls.note(file=source.name), calls.timed(self.engine.endpoint, "POST", path, params), \
                    streams.Stream(self.engine, op, self.stall_s, self.api.timeout) as stream:
                self.last_stream = stream
                yield stream.post_file(path, params, source, content_type)
            return
        res = self.api._post(self.api._url(path), params=params, data=source, stream=True,
                             headers={"Content-Type": content_type}, timeout=None)
        with contextlib.closing(res):
            self.api._raise_for_status(res)
            yield (json.loads(raw) for raw in res.iter_lines() if raw)

    def _silence(self) -> dict[str, float]:
        """How long the last stream went without a byte moving (a busy engine's silent work)."""
        watchdog = self.last_stream.watchdog if self.last_stream else None
        return {"longest_silence_s": round(watchdog.longest_silence, 1)} if watchdog else {}

    # -- archives out --------------------------------------------------------------------------------
    def save(self, refs: str | Iterable[str], path: Path) -> Outcome:
        """docker save REF [REF...] -o path (one request: /images/get?names=...)."""
        names = [refs] if isinstance(refs, str) else list(refs)
        with self._attempt("save") as attempt:
            needed = self._plain_size(names)
            if needed and faults.free_bytes(path.parent) < needed:  # visibly too small: say so before streaming
                raise NoSpace(faults.space_line(path.parent, needed, faults.free_bytes(path.parent)))
            with self._download("save", "/images/get", {"names": names}, file=path) as chunks:
                written = _write_stream(chunks, path, needed)
        if attempt.error:
            return attempt.failure(refs=names)
        return Outcome("save", True, duration_s=attempt.seconds, bytes=written,
                       result={"refs": names, "path": str(path)})

    def export(self, container: str, path: Path) -> Outcome:
        """docker export CONTAINER -o path."""
        with self._attempt("export") as attempt:
            with self._download("export", f"/containers/{urllib.parse.quote(container, safe='')}/export",
                                file=path) as chunks:
                written = _write_stream(chunks, path)
        if attempt.error:
            return attempt.failure(container=container)
        return Outcome("export", True, duration_s=attempt.seconds, bytes=written,
                       result={"container": container, "path": str(path)})

    # -- archives in ---------------------------------------------------------------------------------
    def load(self, path: Path) -> Outcome:
        """docker load -i path; records every line the daemon printed."""
        lines: list[str] = []
        with open(path, "rb") as archive, self._attempt("load") as attempt, \
                self._upload("load", "/images/load", None, archive, "application/x-tar") as messages:
            for message in messages:
                if "error" in message:
                    raise StreamError(message.get("error") or json.dumps(message))
                text = (message.get("stream") or message.get("status") or "").strip()
                if text:
                    lines.append(text)
        # Podman puts the names of several loaded images on one line, joined by commas
        loaded_refs = [ref.strip() for line in lines if line.startswith("Loaded image:")
                       for ref in line.split(":", 1)[1].split(",") if ref.strip()]
        loaded_ids = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Loaded image ID:")]
        for ref in loaded_refs:
            self._track_ref(ref)
        for image_id in loaded_ids:
            self.scope.track_image(image_id)
        # Podman (and the containerd store) may report docker.io/library/NAME or localhost/NAME for NAME
        result = {"daemon_lines": lines, "loaded_refs": loaded_refs, "loaded_ids": loaded_ids,
                  "loaded_names": [short_tag(ref) for ref in loaded_refs], **self._silence()}
        if attempt.error:
            return attempt.failure(**result)
        return Outcome("load", True, message="\n".join(lines) or None, duration_s=attempt.seconds,
                       bytes=os.path.getsize(path), result=result)

    def import_(self, path: Path, ref: str | None = None, *, changes: list[str] | None = None,
                message: str | None = None) -> Outcome:
        """docker import [--change ...] [--message ...] path [REF].

        docker-py's import_image has no `message` (docker-py PR #2099 is unmerged), so this posts to
        the documented /images/create?fromSrc=- endpoint itself, streaming the file as the body.
        """
        params: dict[str, Any] = {"fromSrc": "-"}
        if ref:
            repository, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
            params.update(repo=repository, tag=tag)
        if message:
            params["message"] = message
        if changes:
            params["changes"] = changes
        lines: list[str] = []
        image_id = None
        with open(path, "rb") as archive, self._attempt("import") as attempt, \
                self._upload("import", "/images/create", params, archive, "application/tar") as items:
            for item in items:
                if "error" in item:
                    raise StreamError(item.get("error") or json.dumps(item))
                status = str(item.get("status") or "").strip()
                if status:
                    lines.append(status)
                    if status.startswith("sha256:"):
                        image_id = status
        self.scope.track_image(image_id)
        if attempt.error:
            return attempt.failure(ref=ref, changes=changes or [], daemon_lines=lines)
        return Outcome("import", True, message="\n".join(lines) or None, duration_s=attempt.seconds,
                       bytes=os.path.getsize(path),
                       result={"image_id": image_id, "ref": ref, "changes": changes or [], "message": message})

    def commit(self, container: str, ref: str, *, changes: list[str] | None = None,
               message: str | None = None) -> Outcome:
        repository, _, tag = ref.rpartition(":")
        with self._attempt("commit") as attempt:
            res = self.api.commit(container, repository=repository, tag=tag, message=message, changes=changes or None)
        if attempt.error:
            return attempt.failure(ref=ref)
        self.scope.track_image(res.get("Id"))
        return Outcome("commit", True, duration_s=attempt.seconds,
                       result={"image_id": res.get("Id"), "ref": ref, "changes": changes or [], "message": message})

    # -- containers ----------------------------------------------------------------------------------
    def create(self, image: str, name: str, *, command: list[str] | None = None,
               entrypoint: list[str] | None = None, environment: dict[str, str] | None = None,
               network_mode: str = "none") -> Outcome:
        """docker create, labelled and namespaced, with no network unless asked (most need none)."""
        with self._attempt("create") as attempt:
            container = self.api.create_container(
                image, command=command, entrypoint=entrypoint, name=self.scope.name(name),
                environment=environment, labels=self.scope.labels,
                host_config=self.api.create_host_config(network_mode=network_mode))
        if attempt.error:
            return attempt.failure(image=image)
        self.scope.track_container(container["Id"])
        return Outcome("create", True, duration_s=attempt.seconds,
                       result={"container_id": container["Id"], "name": self.scope.name(name)})

    def start(self, container: str) -> Outcome:
        with self._attempt("start") as attempt:
            self.api.start(container)
        if attempt.error:
            return attempt.failure(container=container)
        return Outcome("start", True, duration_s=attempt.seconds, result={"container": container})

    def run_probe(self, image: str, name: str, *, command: list[str] | None = None,
                  entrypoint: list[str] | None = None, environment: dict[str, str] | None = None,
                  settle_s: float = 4.0) -> Outcome:
        """Does the image run? create + start, then watch it for `settle_s` seconds.

        result["state"]: refused-at-create | refused-at-start | exited | running. The container is
        removed (with its anonymous volumes) afterwards; its last log lines are kept.
        """
        created = self.create(image, name, command=command, entrypoint=entrypoint, environment=environment)
        if created.failed:
            created.op = "run"
            created.result["state"] = "refused-at-create"
            return created
        cid = created.result["container_id"]
        try:
            started = self.start(cid)
            if started.failed:
                started.op = "run"
                started.result.update(state="refused-at-start", logs=self.logs(cid))
                started.duration_s = round(created.duration_s + started.duration_s, 3)
                return started
            deadline = time.monotonic() + settle_s
            state = self.api.inspect_container(cid)["State"]
            while state.get("Running") and time.monotonic() < deadline:
                calls.pause(0.25)
                state = self.api.inspect_container(cid)["State"]
            running = bool(state.get("Running"))
            exit_code = None if running else state.get("ExitCode")
            logs = self.logs(cid)
            ok = running or exit_code == 0
            return Outcome("run", ok, message=None if ok else (state.get("Error") or logs[-1:] or [None])[0],
                           duration_s=round(created.duration_s + started.duration_s, 3),
                           result={"state": "running" if running else "exited", "exit_code": exit_code,
                                   "logs": logs, "image": image})
        finally:
            self.remove(cid)

    def exec(self, container: str, cmd: list[str], user: str | None = None) -> Outcome:
        with self._attempt("exec") as attempt:
            created = self.api.exec_create(container, cmd, user=user or "")
            output = self.api.exec_start(created["Id"]).decode(errors="replace")
            exit_code = self.api.exec_inspect(created["Id"]).get("ExitCode")
        if attempt.error:
            return attempt.failure(cmd=cmd)
        return Outcome("exec", exit_code == 0, message=None if exit_code == 0 else output.strip()[-300:],
                       duration_s=attempt.seconds, result={"exit_code": exit_code, "output": output, "cmd": cmd})

    def wait_ready(self, container: str, cmd: list[str], timeout_s: float = 60.0, user: str | None = None) -> Outcome:
        """Run `cmd` in the container until it exits 0 or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        while True:
            outcome = self.exec(container, cmd, user=user)
            if outcome.ok or time.monotonic() > deadline:
                outcome.op = "wait-ready"
                outcome.duration_s = round(time.monotonic() - started, 3)
                return outcome
            state = self.api.inspect_container(container)["State"]
            if not state.get("Running"):
                return Outcome("wait-ready", False, message=f"container exited with {state.get('ExitCode')}",
                               duration_s=round(time.monotonic() - started, 3),
                               result={"logs": self.logs(container)})
            calls.pause(0.5)

    def logs(self, container: str, tail: int = 20) -> list[str]:
        if self.engine.fault:
            return []
        try:
            raw = self.api.logs(container, stdout=True, stderr=True, tail=tail)
        except ENGINE_ERRORS:
            return []
        return raw.decode(errors="replace").rstrip().splitlines()

    def remove(self, container: str) -> None:
        if self.engine.fault:  # nothing to ask a dead or stopped engine (teardown must not wait for it)
            return
        try:
            self.api.remove_container(container, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS:
            if faults.diagnose(self.engine, during="removing a container") is None:
                raise

    def put_file(self, container: str, source: Path, directory: str) -> Outcome:
        """docker cp SOURCE CONTAINER:DIRECTORY (a small file; the tar is made on the fly, streamed)."""
        with self._attempt("cp") as attempt, tempfile.TemporaryFile() as tar_file:
            with tarfile.open(fileobj=tar_file, mode="w") as tar:
                tar.add(source, arcname=source.name)
            tar_file.seek(0)
            self.api.put_archive(container, directory, tar_file)
        if attempt.error:
            return attempt.failure(container=container, source=str(source))
        return Outcome("cp", True, duration_s=attempt.seconds, bytes=source.stat().st_size,
                       result={"container": container, "path": f"{directory}/{source.name}"})

    # -- images --------------------------------------------------------------------------------------
    def build(self, dockerfile: str, ref: str) -> Outcome:
        """docker build -t REF - (a Dockerfile without context), labelled with the run."""
        lines: list[str] = []
        image_id = None
        with self._attempt("build") as attempt:
            image_id = build_dockerfile(self.engine, dockerfile, ref, self.scope.labels, self.scope, lines)
        if attempt.error:
            return attempt.failure(ref=ref, build_lines=lines[-10:])
        return Outcome("build", True, duration_s=attempt.seconds,
                       result={"image_id": image_id, "ref": ref, "build_lines": lines[-10:]})

    def tag(self, image: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        self.api.tag(image, repository, tag)

    def untag(self, ref: str) -> None:
        """Remove a tag (and the image, if that was its last tag and no child needs it)."""
        try:
            self.api.remove_image(ref)
        except docker.errors.ImageNotFound:
            pass

    def derive(self, source: str, ref: str, **labels: str) -> str:
        """A labelled image of the run's own made FROM `source`: same layers, a new id."""
        return build_labelled_copy(self.engine, source, ref, {**self.scope.labels, **labels}, self.scope)

    def image_id(self, ref: str) -> str | None:
        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            return None

    def _plain_size(self, refs: list[str]) -> int | None:
        """A lower bound of a save archive's size, where layers are saved as plain tars (graphdrivers,
        Podman): the largest image's size. None where it is not a bound (the containerd store saves the
        layers it built compressed)."""
        endpoint = self.engine.endpoint
        if endpoint.startswith("unix://") and not os.path.exists(endpoint[len("unix://"):]):
            # docker-py leaks a socket on every call to a socket file that is gone: do not make one
            raise streams.Broken(f"no socket at {endpoint}")
        if self.engine.facts.image_store == "containerd":
            return None
        sizes = []
        for ref in refs:
            try:
                sizes.append(int(self.api.inspect_image(ref).get("Size") or 0))
            except ENGINE_ERRORS:
                return None
        return max(sizes, default=0) or None

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.api.inspect_image(ref)

    def history(self, ref: str) -> list[dict[str, Any]]:
        return self.api.history(ref)

    def _track_ref(self, ref: str) -> None:
        image_id = self.image_id(ref)
        self.scope.track_image(image_id)


def build_labelled_copy(engine: Engine, source: str, ref: str, labels: dict[str, str], scope: RunScope) -> str:
    """`docker build` of `FROM source` with labels only: no new layer, a new image id."""
    return build_dockerfile(engine, f"FROM {source}\n", ref, labels, scope)


def build_dockerfile(engine: Engine, dockerfile: str, ref: str, labels: dict[str, str], scope: RunScope,
                     lines: list[str] | None = None) -> str:
    """`docker build -t REF -` of a Dockerfile without context; the image is on the run's ledger even when
    the build fails half-way, and so is every image a step of the build made. Raises BuildError with the
    daemon's words."""
    image_id = None
    steps: list[str] = []
    existed = {image["Id"] for image in engine.api.images(all=True)}
    try:
        for chunk in engine.api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, labels=labels,
                                      rm=True, forcerm=True, decode=True, pull=False):
            if "error" in chunk:
                raise docker.errors.BuildError(chunk["error"].strip(), [])
            stream = chunk.get("stream") or ""
            steps += STEP_IMAGE.findall(stream)
            text = stream.strip()
            if text and lines is not None:
                lines.append(text)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    finally:
        scope.track_image(image_id)
        _track_step_images(engine, steps, existed, scope)
    image_id = image_id or engine.api.inspect_image(ref)["Id"]
    scope.track_image(image_id)
    return image_id


def _track_step_images(engine: Engine, steps: list[str], existed: set[str], scope: RunScope) -> None:
    """The classic builder commits an image per step. With overlay2 they are the final image's parents and
    go with it; the containerd image store keeps them as untagged images of their own. A step that names
    an image which existed before the build (the FROM image) is not ours and is never tracked."""
    for step in steps:
        try:
            full = engine.api.inspect_image(step)["Id"]
        except docker.errors.APIError:
            continue
        if full not in existed:
            scope.track_image(full)


class NoSpace(SaveexportError):
    """The disk under the archive filled up (or is visibly too small for it)."""


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _write_stream(chunks: Iterable[bytes], path: Path, needed: int | None = None) -> int:
    """Into PATH.partial, renamed to PATH only when the stream ended well: nothing half-written ever
    carries the archive's name, also when this process is killed. A failure removes the partial file."""
    written = 0
    partial = partial_path(path)
    _unlink(path)
    try:
        with open(partial, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
        os.replace(partial, path)
    except OSError as exc:
        _unlink(partial)
        if faults.is_no_space(exc):
            raise NoSpace(faults.filled_line(path.parent, written, needed)) from exc
        raise
    except BaseException:
        _unlink(partial)
        raise
    return written


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
