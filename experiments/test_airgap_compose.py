"""C4: carry a compose application to an engine that has no registry, by save/load and by export/import.

The application (postgres from the subject image and the project's notes app) runs on the engine
under test through pytest-docker's fixtures. Its images go to a second engine that starts empty and
cannot pull (a private dockerd; the compose file says `pull_policy: never`), and the same compose
file is brought up there with pytest-docker's `get_docker_services`: the app must answer and data
must flow from the app into postgres and back.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor, get_docker_services

from saveexport import calls
from saveexport.archives import Archive
from saveexport.compose import APP_PORT, AppClient, write_compose_file
from saveexport.imageconfig import lost_fields, restoring_changes, run_config
from saveexport.isolation import Snapshot
from saveexport.operations import Operations

pytestmark = pytest.mark.usefixtures("run_scope")

UP = "up --wait --wait-timeout 180"  # no --build and no pull: the images are there or the route failed
DOWN = "down --volumes --timeout 5"
SERVICES = ("db", "app")
SOURCE_NOTE = "written on the source engine before the move"


def _host(endpoint: str) -> str:
    """Where the engine's published ports are: this machine for a socket, else the engine's host."""
    if endpoint.startswith(("unix://", "npipe://")):
        return "127.0.0.1"
    return endpoint.split("://", 1)[-1].rsplit(":", 1)[0].split("@")[-1]


# pytest-docker's own fixtures, aimed at the engine under test and named in the run's namespace.
@pytest.fixture(scope="session")
def docker_compose_command(saveexport_compose, container_engine) -> str:
    return saveexport_compose.command(container_engine.endpoint)


@pytest.fixture(scope="session")
def docker_compose_file(tmp_path_factory, subject_image, app_image, run_scope, container_engine) -> str:
    path = tmp_path_factory.mktemp("compose") / "compose.yaml"
    local = _host(container_engine.endpoint) == "127.0.0.1"
    return str(write_compose_file(path, db_image=subject_image.run_ref, app_image=app_image.run_ref,
                                  scope=run_scope, bind="127.0.0.1" if local else ""))


@pytest.fixture(scope="session")
def docker_compose_project_name(run_scope) -> str:
    return run_scope.name("airgap-source")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return [UP]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return [DOWN]


@pytest.fixture(scope="session")
def source_app(docker_services, container_engine) -> AppClient:
    """The application up on the engine under test, answering, with one note written through it."""
    client = AppClient(_host(container_engine.endpoint), docker_services.port_for("app", APP_PORT))
    client.wait(timeout_s=90)  # its polls are recorded (calls.pause), as every deliberate wait of the suite
    _data_flows(client, SOURCE_NOTE)
    return client


def _compose_images(compose, endpoint: str, compose_file: str) -> list[str]:
    """`docker compose config --images`: what a user would save, read from the compose file itself."""
    argv = [*compose.argv_for(endpoint), "-f", compose_file, "config", "--images"]
    with calls.cli(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return sorted(set(proc.stdout.split()))


def _service_container(engine, project: str, service: str) -> str:
    found = engine.api.containers(all=True, filters={"label": [f"com.docker.compose.project={project}",
                                                               f"com.docker.compose.service={service}"]})
    assert len(found) == 1, f"expected one {service} container of {project}, found {len(found)}"
    return found[0]["Id"]


def _try_up(command: str, compose_file: str, project: str) -> tuple[bool, str, float]:
    """`compose up` that may fail: the words of the failure are kept and what it made is taken down.

    pytest-docker raises a bare Exception (with compose's output) when a command fails, and does not
    run its clean-up when set-up failed; both are handled here.
    """
    started = time.monotonic()
    executor = DockerComposeExecutor(command, compose_file, project)
    try:
        executor.execute(UP)
        return True, "", round(time.monotonic() - started, 3)
    except Exception as exc:  # pytest-docker's execute() raises only Exception
        return False, str(exc).split('"""', 1)[-1].strip(' ".\n'), round(time.monotonic() - started, 3)
    finally:
        executor.execute(DOWN)


@contextlib.contextmanager
def _stack_on(engine, compose, compose_file: str, project: str):
    """The compose file up on `engine` through pytest-docker, with a client for its app; down afterwards."""
    started = time.monotonic()
    with get_docker_services(compose.command(engine.endpoint), compose_file, project, [UP], [DOWN]) as services:
        up_s = round(time.monotonic() - started, 3)
        client = AppClient(_host(engine.endpoint), services.port_for("app", APP_PORT))
        answered_s = client.wait(timeout_s=90)
        yield client, {"compose_up_s": up_s, "first_answer_s": answered_s}


def _data_flows(client: AppClient, text: str) -> list[str]:
    written = client.write(text)
    notes = client.notes()
    assert text in notes, f"the note written through the app ({written}) did not come back: {notes}"
    return notes


def _db_log(engine, project: str, lines: int = 4) -> list[str]:
    try:
        cid = _service_container(engine, project, "db")
        return engine.api.logs(cid, tail=lines).decode(errors="replace").strip().splitlines()
    except AssertionError:
        return []


@pytest.mark.claim("C4")
def test_compose_app_moves_to_an_empty_engine_by_save_and_load(
        container_engine, engine_ops, empty_engine, saveexport_compose, source_app, docker_compose_file, run_scope,
        archive_dir: Path, claim_evidence):
    compose = saveexport_compose
    images = _compose_images(compose, container_engine.endpoint, docker_compose_file)
    archive_path = archive_dir / "compose-images.tar"
    saved = engine_ops.save(images, archive_path)
    assert saved.ok, saved.message
    archive = Archive(archive_path)
    assert not Snapshot.take(empty_engine).images, "the second engine should start without images"

    # Before the archive arrives, the air-gapped engine cannot start the application at all.
    project = run_scope.name("airgap-save")
    without, why_not, _ = _try_up(compose.command(empty_engine.endpoint), docker_compose_file, project)

    target = Operations(empty_engine, run_scope)
    loaded = target.load(archive_path)
    assert loaded.ok, loaded.message
    with _stack_on(empty_engine, compose, docker_compose_file, project) as (client, times):
        on_target = f"written on the empty engine after load ({empty_engine.facts.label})"
        notes = _data_flows(client, on_target)
    claim_evidence.observe(
        "airgap-compose", route="save/load", source_engine=container_engine.facts.label,
        target_engine=empty_engine.facts.label, compose=compose, images=images, save=saved, load=loaded,
        archive={"bytes": archive.size, "layout": archive.layout, "images": len(archive.images),
                 "layers": len(archive.layers)},
        up_without_archive={"ok": without, "message": why_not}, timings=times,
        data_flows=on_target in notes, source_data_on_target=SOURCE_NOTE in notes, notes_on_target=notes)
    claim_evidence.verdict("C4", "confirmed" if sorted(loaded.result["loaded_names"]) == images else "refuted",
                           f"one `docker save` of the {len(images)} images compose needs "
                           f"({archive.size:,} bytes), loaded into an empty engine ({empty_engine.facts.label}), "
                           f"gave every image under its "
                           f"name; compose up there answered and the app wrote to and read from postgres")
    claim_evidence.verdict("C4", "confirmed", "save/load carries images only: the data written on the source "
                           "stayed there (volumes travel separately)" if SOURCE_NOTE not in notes else
                           "the source's data arrived too")
    assert not without, "compose up on the empty engine should fail before the images are loaded"
    assert sorted(loaded.result["loaded_names"]) == images
    assert SOURCE_NOTE not in notes


@pytest.mark.claim("C4")
def test_compose_app_by_export_and_import_needs_its_config_restored(
        container_engine, engine_ops, empty_engine, saveexport_compose, source_app, docker_compose_file,
        docker_compose_project_name, subject_image, app_image, run_scope, archive_dir: Path, claim_evidence):
    compose = saveexport_compose
    names = {"db": subject_image.run_ref, "app": app_image.run_ref}  # the names the compose file uses
    exports = {}
    for service in SERVICES:
        cid = _service_container(container_engine, docker_compose_project_name, service)
        exports[service] = engine_ops.export(cid, archive_dir / f"compose-{service}-export.tar")
        assert exports[service].ok, exports[service].message
    target = Operations(empty_engine, run_scope)
    command = compose.command(empty_engine.endpoint)

    bare = {service: target.import_(Path(exports[service].result["path"]), names[service]) for service in SERVICES}
    assert all(o.ok for o in bare.values()), {s: o.message for s, o in bare.items()}
    project = run_scope.name("airgap-import")
    bare_up, bare_why, _ = _try_up(command, docker_compose_file, project)

    restored, lost = {}, {}
    for service in SERVICES:
        original = run_config(engine_ops.inspect(names[service]))
        lost[service] = lost_fields(original, run_config(target.inspect(bare[service].result["image_id"])))
        changes = restoring_changes(original, lost[service])
        restored[service] = target.import_(Path(exports[service].result["path"]), names[service], changes=changes)
        assert restored[service].ok, restored[service].message
    with _stack_on(empty_engine, compose, docker_compose_file, project) as (client, times):
        text = f"written on the empty engine after import ({empty_engine.facts.label})"
        notes = _data_flows(client, text)
        db_log = _db_log(empty_engine, project)
    claim_evidence.observe(
        "airgap-compose", route="export/import", source_engine=container_engine.facts.label,
        target_engine=empty_engine.facts.label, exports=exports, bare_import=bare,
        up_after_bare_import={"ok": bare_up, "message": bare_why},
        lost={s: [k for k, v in lost[s].items() if v["lost"]] for s in SERVICES},
        changes={s: restored[s].result["changes"] for s in SERVICES}, restored_import=restored,
        timings=times, data_flows=text in notes, source_data_on_target=SOURCE_NOTE in notes, notes_on_target=notes,
        db_log_tail=db_log)
    claim_evidence.verdict("C4", "confirmed" if not bare_up else "refuted",
                           "export/import is no substitute: after a bare import compose up fails "
                           f"({bare_why.splitlines()[-1][:160] if bare_why else 'no message'})")
    assert not bare_up, "compose up should fail on images imported without their config"
    assert SOURCE_NOTE not in notes
    assert all(restored[s].result["changes"] for s in SERVICES)
    assert lost["db"]["Cmd"]["lost"] and lost["app"]["Cmd"]["lost"]


def test_the_app_ends_on_sigterm_as_a_stop_asks(engine_ops, app_image):
    """Not a claim: the scenario's own app stops when asked. Its container's PID 1 gets no default action
    for SIGTERM, and an app without a handler is killed once `docker stop`'s (and `compose down`'s)
    timeout runs out, with exit code 137."""
    created = engine_ops.create(app_image.run_ref, "app-stop", environment={"PGHOST": "127.0.0.1"})
    assert created.ok, created.message
    cid = created.result["container_id"]
    try:
        assert engine_ops.start(cid).ok
        _until_it_catches_sigterm(engine_ops.api, cid)
        engine_ops.api.stop(cid, timeout=60)
        state = engine_ops.api.inspect_container(cid)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), state
    finally:
        engine_ops.remove(cid)


def _until_it_catches_sigterm(api, cid: str, wait_s: float = 60) -> None:
    """Until PID 1 has set its handler (SigCgt in /proc/1/status): a stop before that is ignored by any app."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        run = api.exec_create(cid, ["cat", "/proc/1/status"])
        status = api.exec_start(run["Id"]).decode(errors="replace")
        caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.2)
    pytest.fail(f"the app's PID 1 set no SIGTERM handler within {wait_s:.0f} s", pytrace=False)
