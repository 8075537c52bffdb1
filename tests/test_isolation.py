"""On a real engine: a run leaves what the user owns exactly as it was, also when interrupted."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from interrupting import INTERRUPTIBLE
from saveexport.engines import Engine
from saveexport.operations import Operations
from saveexport.errors import EngineUnavailable
from saveexport.isolation import (LABEL_RUN, RunScope, Snapshot, describe_images, engine_kept_images, full_id,
                                  short_tag)

ROOT = Path(__file__).resolve().parents[1]
# Names the article's own commands would clobber: `docker import ... postgres:latest`, a container named postgres.
USER_TAGS = ("postgres:latest", "mongo:latest")
USER_CONTAINER = "postgres"
USER_VOLUME = "pgdata"


@pytest.fixture(scope="module")
def engine(pytestconfig):
    try:
        engine = Engine.connect(pytestconfig.getoption("saveexport_docker_host"))
    except EngineUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield engine
    engine.close()


def run_pytest(*args: str, report_dir: Path, **popen) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--saveexport-report-dir={report_dir}",
            *args]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="module")
def warm_cache(engine, tmp_path_factory):
    """Build (or find) the cached subject and second image first, so the runs under test add nothing that
    stays by design (on a fresh machine the second image's first build would otherwise happen inside them).

    The probe test fails on purpose: its report must carry the subject container's log lines.
    """
    folder = tmp_path_factory.mktemp("warm")
    probe = folder / "test_probe.py"
    probe.write_text("def test_fails_with_logs(subject_container, second_image, engine_ops):\n"
                     "    assert False, 'on purpose'\n")
    proc = run_pytest(str(probe), f"--rootdir={ROOT}", "-c", str(ROOT / "tox.ini"), report_dir=folder / "r")
    output, _ = proc.communicate(timeout=900)
    return output


def test_a_failing_experiment_shows_the_container_logs(warm_cache):
    assert "1 failed" in warm_cache, warm_cache[-2000:]
    assert "container saveexport-" in warm_cache and "(last 40 log lines)" in warm_cache
    assert "database system is ready to accept connections" in warm_cache


@pytest.fixture
def user_owned(engine, warm_cache):
    """Things a user might own, made here only where absent (and removed again only if made here)."""
    api = engine.api
    made_tags, made_container, made_volume = [], None, None
    base = next(i for i in api.images() if any(t.startswith("saveexport-cache-debian:") for t in i["RepoTags"] or []))
    user_image = None
    for ref in USER_TAGS:
        try:
            api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            if user_image is None:
                dockerfile = f"FROM {base['Id']}\nLABEL owner=the-user\n".encode()
                for _ in api.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True, decode=True):
                    pass
                user_image = api.inspect_image(ref)["Id"]
            else:
                api.tag(user_image, *ref.split(":"))
            made_tags.append(ref)
    try:
        api.inspect_container(USER_CONTAINER)
    except docker.errors.NotFound:
        made_container = api.create_container(made_tags[0] if made_tags else base["Id"], command=["true"],
                                              name=USER_CONTAINER)["Id"]
    if USER_VOLUME not in {v["Name"] for v in api.volumes().get("Volumes") or []}:
        made_volume = api.create_volume(USER_VOLUME)["Name"]
    yield
    if made_container:
        api.remove_container(made_container, force=True)
    if made_volume:
        api.remove_volume(made_volume)
    for ref in made_tags:
        api.remove_image(ref)


def assert_untouched(engine, before: Snapshot) -> None:
    after = Snapshot.take(engine)
    assert after.changes_since(before) == {}
    assert not engine.api.containers(all=True, filters={"label": LABEL_RUN})


def test_a_run_leaves_the_users_images_tags_containers_and_volumes_as_they_were(engine, user_owned, tmp_path):
    before = Snapshot.take(engine)
    proc = run_pytest("experiments/test_export_import.py::test_import_makes_a_named_one_layer_image_and_takes_the_name",
                      "experiments/test_save_load.py::test_load_moves_an_existing_tag_and_keeps_the_old_image",
                      report_dir=tmp_path)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    assert_untouched(engine, before)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_cleans_up_too(engine, user_owned, tmp_path, signum):
    before = Snapshot.take(engine)
    proc = run_pytest("experiments/test_cross_load.py", report_dir=tmp_path, **INTERRUPTIBLE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if engine.api.containers(all=True, filters={"label": LABEL_RUN}):
            break  # the run is in the middle of its work: it has made things
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(2)
    os.kill(proc.pid, signum)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in output, output[-2000:]
    assert_untouched(engine, before)


def test_ids_and_names_as_podman_reports_them_are_normalised():
    bare = "e8fd91bdd86afbbbd2cd57ad8c6aba53769d427ffe3882d405057ccd038a6f33"
    assert full_id(bare) == "sha256:" + bare  # Podman's compat API refuses a bare 64-hex name
    assert full_id("sha256:" + bare) == "sha256:" + bare and full_id("abc123") == "abc123"
    scope = RunScope(run_id="r1")
    scope.track_image(bare)
    assert scope.images == {"sha256:" + bare}
    for spelled in ("localhost/saveexport-r1-x:1", "docker.io/library/saveexport-r1-x:1", "saveexport-r1-x:1"):
        assert short_tag(spelled) == "saveexport-r1-x:1" and scope.owns_tag(spelled)
    assert not scope.owns_tag("docker.io/library/postgres:9.6")


def test_what_the_engine_kept_excludes_the_cache_and_what_was_there():
    def snap(images):
        return Snapshot(images=images, containers={}, volumes=frozenset(), networks=frozenset())

    before = snap({"sha256:a": ("postgres:latest",)})
    after = snap({"sha256:a": ("postgres:latest",), "sha256:c": ("saveexport-cache-postgres:9.6-x",),
                  "sha256:d": (), "sha256:e": ("docker.io/library/saveexport-cache-mongo:3.4-y", "other:1")})
    assert engine_kept_images(before, after) == {"sha256:d": [],
                                                 "sha256:e": ["docker.io/library/saveexport-cache-mongo:3.4-y", "other:1"]}


def test_the_steps_a_cache_image_was_built_through_are_the_cache_s_not_kept_by_the_engine():
    """Seen on a cold machine: the app's cache image, built during the run by the classic builder, kept
    its steps as untagged parents, and the report listed them as images the engine kept."""
    images = {"sha256:base": ("saveexport-cache-postgres:9.6-x",), "sha256:s1": (), "sha256:s2": (),
              "sha256:app": ("saveexport-cache-app:1-y",), "sha256:mine": ("mine:1",), "sha256:s3": (),
              "sha256:built-on-mine": ("saveexport-cache-other:1-z",), "sha256:orphan": ()}
    parents = {"sha256:app": "sha256:s2", "sha256:s2": "sha256:s1", "sha256:s1": "sha256:base",
               "sha256:built-on-mine": "sha256:s3", "sha256:s3": "sha256:mine"}
    after = Snapshot(images=images, containers={}, volumes=frozenset(), networks=frozenset(), parents=parents)
    before = Snapshot(images={}, containers={}, volumes=frozenset(), networks=frozenset())
    # the walk stops at a tagged image that is not the cache's: it and what it was built from are reported
    assert engine_kept_images(before, after) == {"sha256:mine": ["mine:1"], "sha256:orphan": []}


def test_an_image_the_engine_kept_is_described_for_the_report(engine):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    answer = engine.api.import_image_from_data(layer.getvalue(), changes=[f"LABEL {LABEL_RUN}=describe-test"])
    image_id = json.loads(answer.strip().splitlines()[-1])["status"]
    try:
        described = describe_images(engine, [image_id, "sha256:" + "0" * 64])
    finally:
        engine.api.remove_image(image_id, force=True)
    kept = described[image_id]
    assert kept["layers"] == 1 and kept["labels"] == {LABEL_RUN: "describe-test"}
    assert kept["created"] and kept["bytes"] > 0
    assert "error" in described["sha256:" + "0" * 64]  # gone already: said, not raised


def test_images_made_by_build_steps_are_the_runs_and_go_with_it(engine, warm_cache):
    """The classic builder commits an image per step; the containerd store keeps them apart from the
    final image, so a run must know and remove them all, but never the FROM image."""
    base = next(i for i in engine.api.images() if any(t.startswith("saveexport-cache-debian:")
                                                       for t in i["RepoTags"] or []))
    scope = RunScope(run_id=f"steps{os.getpid()}")
    before = Snapshot.take(engine)
    ops = Operations(engine, scope)
    outcome = ops.build(f"FROM {base['Id']}\nLABEL one=1\nLABEL two=2\n", scope.ref("steps"))
    try:
        assert outcome.ok, outcome
        made = set(scope.images)
        assert base["Id"] not in made and full_id(outcome.result["image_id"]) in made
        assert len(made) >= 2, made  # the final image and at least the step before it
    finally:
        problems = scope.cleanup(engine, protected=before)
    assert problems == [] and scope.remaining(engine, protected=before) == {}
    assert not made & {i["Id"] for i in engine.api.images(all=True)}
    assert base["Id"] in {i["Id"] for i in engine.api.images(all=True)}
