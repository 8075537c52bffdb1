"""Fixtures for experiments on a real engine: use them in your own tests too.

Session scope, one engine per process; each archive is made once and shared.

- ``container_engine``: the connected :class:`~saveexport.engines.Engine` (facts: version, API, store).
- ``run_scope``: the run's namespace, labels and ledger; everything it names is removed at the end.
- ``engine_ops``: :class:`~saveexport.operations.Operations`; save/export/load/import/commit/run/exec,
  each returning an :class:`~saveexport.operations.Outcome` instead of raising.
- ``subject_image`` / ``second_image``: the run's labelled copies of the subject images
  (default postgres:9.6 and mongo:3.4; offline stand-ins where they cannot be pulled).
- ``subject_container``: a running, ready container of the subject image.
- ``save_archive`` / ``export_archive``: the subject's save archive and the container's export
  archive, each with the Outcome that made it.
- ``app_image``: the project's own notes app (for the compose scenario), built once per machine.
- ``empty_engine`` (function scope): a second engine that starts empty and has no registry: a
  private dockerd of the engine's own build, removed with everything in it afterwards.
- ``saveexport_compose``: Compose v2 (found, or fetched from Debian into the cache).
- ``claim_evidence`` (function scope): records observations and verdicts into the report.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import pytest

from .archives import Archive
from . import faults, matrix, storage_watch
from .compose import Compose, find_compose
from .daemons import PrivateDockerd
from .debian_mirror import Mirrors
from .engines import Engine, resolve_endpoint
from .errors import SaveexportError
from .evidence import Recorder, fact_record
from .isolation import RunScope, Snapshot, describe_images, disk_usage, engine_kept_images
from .matrix import EngineSpec
from .operations import Operations, Outcome
from .settings import Settings
from .subject import APP_IMAGE, SubjectImage, obtain
from .state import ENGINE_SPECS, MIRRORS, PENDING_FACTS, RUN_ID, SETTINGS

PG_ENV = {"POSTGRES_PASSWORD": "saveexport"}
PG_READY = ["pg_isready", "-U", "postgres", "-h", "/var/run/postgresql"]


@dataclass
class MadeArchive:
    """An archive on disk and the Outcome of the operation that wrote it."""

    path: Path
    outcome: Outcome

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @functools.cached_property
    def analysis(self) -> Archive:
        """The archive read once (streaming) and shared by every experiment that looks inside it."""
        return Archive(self.path)


def _fact(config: pytest.Config, kind: str, key: str, data: dict) -> None:
    config.stash[PENDING_FACTS].append(fact_record(kind, key, data))


@pytest.fixture(scope="session")
def saveexport_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def saveexport_engine_spec(request: pytest.FixtureRequest) -> EngineSpec:
    """Which engine (one --saveexport-engine value); tests are parametrized over them."""
    return getattr(request, "param", None) or request.config.stash[ENGINE_SPECS][0]


@pytest.fixture(scope="session")
def container_engine(pytestconfig: pytest.Config, saveexport_settings: Settings, saveexport_engine_spec: EngineSpec):
    """The engine, connected; a private daemon or Podman service is started first and stopped after."""
    spec = saveexport_engine_spec
    index = pytestconfig.stash[ENGINE_SPECS].index(spec) + 1
    stop = None
    try:
        endpoint, stop, log, storage_root, cli = matrix.start(spec, index)
        if stop:  # a Ctrl-C or SIGTERM during another fixture's teardown ends pytest's teardown there
            atexit.register(stop)
        engine = Engine.connect(endpoint, timeout=saveexport_settings.timeout)
        engine.spec = spec
        engine.log_path = log
        engine.storage_root = storage_root
        engine.cli = cli
        facts = engine.facts
        matrix.check_started(spec, facts.min_api_version, facts.components)
    except SaveexportError as exc:
        if stop:
            stop()
            atexit.unregister(stop)
        pytest.fail(str(exc), pytrace=False)
    _fact(pytestconfig, "engine", facts.endpoint, dict(facts.to_dict(), spec=spec.to_dict()))
    yield engine
    engine.close()
    if stop:
        stop()
        atexit.unregister(stop)


@pytest.fixture(scope="session")
def run_scope(pytestconfig: pytest.Config, container_engine: Engine):
    """The run's namespace; at the end (also after failures and Ctrl-C) it removes what the run made."""
    scope = RunScope(run_id=pytestconfig.stash[RUN_ID])
    watch = _storage_watch(container_engine)
    before = Snapshot.take(container_engine)
    usage_before = disk_usage(container_engine)
    yield scope
    back = faults.recovered(container_engine)  # it came back after its fault: clean up as usual
    if back is not None:
        engine_id = getattr(container_engine.spec, "id", container_engine.endpoint)
        _fact(pytestconfig, "engine-fault", f"{engine_id} recovered {back.when}", back.to_dict())
    fault = container_engine.fault or faults.diagnose(container_engine, during="the run's cleanup")
    if fault is not None and not fault.lasting:
        fault = None  # it restarted: clean up what the run made on it
    if fault is not None:  # nothing to ask: a private engine goes with its data-root; `saveexport gc` later
        container_engine.fault = fault
        _fact(pytestconfig, "leaks", container_engine.facts.label, {
            "engine": container_engine.facts.label, "suite_leftovers": {}, "engine_kept_images": None,
            "cleanup_problems": [f"not cleaned: {fault.line}" + ("" if getattr(container_engine.spec, "private", False)
                                 else "; `saveexport gc` removes what the run left once it answers again")]})
        return
    problems = scope.cleanup(container_engine, protected=before)
    # What the suite failed to remove (must be nothing) vs what the engine itself keeps after removal.
    leftovers = scope.remaining(container_engine, protected=before)
    usage_after = disk_usage(container_engine)
    kept = engine_kept_images(before, Snapshot.take(container_engine))
    _fact(pytestconfig, "leaks", container_engine.facts.label, {
        "engine": container_engine.facts.label, "suite_leftovers": leftovers, "cleanup_problems": problems,
        "engine_kept_images": kept, "engine_kept_details": describe_images(container_engine, kept),
        "engine_usage_before": usage_before, "engine_usage_after": usage_after})
    if watch is not None:
        _fact(pytestconfig, "storage", container_engine.facts.label, watch.result(container_engine))
    if problems or leftovers:  # recorded above; the run must not pass with them
        raise SaveexportError("the run's cleanup left things behind on the engine: "
                              + "; ".join(problems + ([json.dumps(leftovers)] if leftovers else [])))


def _storage_watch(engine: Engine) -> storage_watch.Watch | None:
    """The census of the engine's storage before the run touches it (storage_watch.py)."""
    try:
        engine.storage_watch = storage_watch.Watch(storage_watch.place_of(engine, engine.storage_root))
    except docker.errors.DockerException:
        return None
    return engine.storage_watch


@pytest.fixture(scope="session")
def engine_ops(container_engine: Engine, run_scope: RunScope, saveexport_settings: Settings) -> Operations:
    return Operations(container_engine, run_scope, stall_s=saveexport_settings.stall_timeout)


def _subject(config: pytest.Config, engine: Engine, settings: Settings, scope: RunScope, ref: str,
             source: str | None = None) -> SubjectImage:
    # A private engine starts empty and has no registry: it gets the image from the machine's own engine.
    private = getattr(engine, "spec", None) is not None and engine.spec.private
    seed = resolve_endpoint(settings.docker_host) if private else None
    try:
        subject = obtain(engine, ref, source or settings.image_source, scope, cache_dir=settings.cache_dir,
                         suite=settings.debian_suite, mirrors=config.stash[MIRRORS], seed=seed,
                         private=seed is not None)
    except SaveexportError as exc:
        pytest.fail(str(exc), pytrace=False)
    _fact(config, "subject", f"{engine.endpoint}|{ref}", dict(subject.to_dict(), engine=engine.facts.label))
    return subject


@pytest.fixture(scope="session")
def subject_image(pytestconfig, container_engine, saveexport_settings, run_scope) -> SubjectImage:
    return _subject(pytestconfig, container_engine, saveexport_settings, run_scope, saveexport_settings.image)


@pytest.fixture(scope="session")
def second_image(pytestconfig, container_engine, saveexport_settings, run_scope) -> SubjectImage:
    return _subject(pytestconfig, container_engine, saveexport_settings, run_scope, saveexport_settings.second_image)


@pytest.fixture(scope="session")
def app_image(pytestconfig, container_engine, saveexport_settings, run_scope) -> SubjectImage:
    """The project's notes app (assets/app): always built here, from the same Debian base as the stand-ins."""
    return _subject(pytestconfig, container_engine, saveexport_settings, run_scope, APP_IMAGE, source="build")


@pytest.fixture(scope="session")
def debian_mirrors(pytestconfig: pytest.Config) -> Mirrors:
    """The Debian mirrors every fetch uses: --saveexport-debian-mirror, else apt's own configuration."""
    return pytestconfig.stash[MIRRORS]


@pytest.fixture(scope="session")
def saveexport_compose(debian_mirrors: Mirrors) -> Compose:
    try:
        return find_compose(mirrors=debian_mirrors)
    except SaveexportError as exc:
        pytest.fail(str(exc), pytrace=False)


def _worker_number(config: pytest.Config) -> int:
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


@pytest.fixture
def empty_engine(pytestconfig: pytest.Config, container_engine: Engine, saveexport_settings: Settings):
    """A second engine, empty and without a registry, as an air-gapped host is.

    A private dockerd of the engine's own build (for Podman, or an engine the plugin did not start:
    the dockerd on PATH, which the evidence and the C4 verdict name), with the same image store; its
    data-root is deleted afterwards.
    """
    spec = container_engine.spec
    dockerd = spec.build.dockerd if spec.kind == "dockerd" else shutil.which("dockerd")
    if dockerd is None:
        pytest.fail("this scenario needs a second engine: no dockerd on PATH to start one (run scripts/engine up, "
                    "or name a private engine with --saveexport-engine docker:SUITE)", pytrace=False)
    index = pytestconfig.stash[ENGINE_SPECS].index(spec) + 1
    worker = _worker_number(pytestconfig)
    daemon = PrivateDockerd(name=f"{spec.id[:32]}-empty-{worker}-{os.getpid()}", dockerd=dockerd,
                            index=20 + 8 * worker + index, containerd_store=spec.containerd_store,
                            min_api=spec.min_api, containerd_bin=spec.containerd.bin if spec.containerd else None)
    try:
        engine = Engine.connect(daemon.start(), timeout=saveexport_settings.timeout)
        engine.variant = spec.variant
        _fact(pytestconfig, "empty-engine", f"{spec.id}|empty", dict(engine.facts.to_dict(), role="empty engine",
                                                                 for_engine=container_engine.facts.label))
    except SaveexportError as exc:
        daemon.stop(keep_log=True)
        pytest.fail(str(exc), pytrace=False)
    try:
        yield engine
    finally:
        engine.close()
        daemon.stop()


@pytest.fixture(scope="session")
def archive_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, saveexport_settings: Settings):
    """Where the run's archives go: --saveexport-archive-dir (a folder of the run's own below it), else a
    temporary directory."""
    if saveexport_settings.archive_dir:
        parent = Path(saveexport_settings.archive_dir)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=f"saveexport-{pytestconfig.stash[RUN_ID]}-", dir=parent))
        except OSError as exc:
            pytest.fail(f"--saveexport-archive-dir {parent}: {exc.strerror or exc}", pytrace=False)
    else:
        path = tmp_path_factory.mktemp("saveexport-archives")
    yield path
    if not saveexport_settings.keep_archives:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def subject_container(engine_ops: Operations, subject_image: SubjectImage):
    """A running container of the subject, named like the article's (`<run>-postgres`), ready."""
    created = engine_ops.create(subject_image.run_ref, "postgres", environment=PG_ENV)
    if created.failed:
        pytest.fail(f"could not create a container of {subject_image.run_ref}: {created.message}", pytrace=False)
    cid = created.result["container_id"]
    started = engine_ops.start(cid)
    if started.failed:
        pytest.fail(f"could not start {created.result['name']}: {started.message}", pytrace=False)
    ready = engine_ops.wait_ready(cid, PG_READY, timeout_s=90)
    if ready.failed:
        logs = "\n".join(engine_ops.logs(cid))
        pytest.fail(f"{created.result['name']} did not become ready: {ready.message}\n{logs}", pytrace=False)
    yield created.result["name"]
    engine_ops.remove(cid)


@pytest.fixture(scope="session")
def save_archive(engine_ops: Operations, subject_image: SubjectImage, archive_dir: Path) -> MadeArchive:
    """`docker save -o postgres-save.tar <run>-postgres:9.6`."""
    path = archive_dir / "postgres-save.tar"
    outcome = engine_ops.save(subject_image.run_ref, path)
    if outcome.failed:
        pytest.fail(f"docker save {subject_image.run_ref} failed: {outcome.message}", pytrace=False)
    return MadeArchive(path, outcome)


@pytest.fixture(scope="session")
def export_archive(engine_ops: Operations, subject_container: str, archive_dir: Path) -> MadeArchive:
    """`docker export -o postgres-export.tar <run>-postgres` (the running container)."""
    path = archive_dir / "postgres-export.tar"
    outcome = engine_ops.export(subject_container, path)
    if outcome.failed:
        pytest.fail(f"docker export {subject_container} failed: {outcome.message}", pytrace=False)
    return MadeArchive(path, outcome)


@pytest.fixture
def claim_evidence(request: pytest.FixtureRequest) -> Recorder:
    """Record observations and verdicts for the claims this test covers (under the test's own engine)."""
    def label() -> str | None:
        if "container_engine" in request.fixturenames:
            return request.getfixturevalue("container_engine").facts.label
        return None

    return Recorder(request.node.user_properties, request.node.nodeid, label)
