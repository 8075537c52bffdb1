"""What an engine's storage keeps after one operation alone, on a tiny image: the storage census found
Docker 26.1.5 (overlay2) keeping read-write layers after the tests that export a container, which
20.10.24 and 28.5.2 did not (upstream: moby/moby#48516, "docker export container creates orphan
layers", reported on 27.2.1). Each operation here runs alone between two censuses of the engine's own
storage, and what it left is asserted against what was measured for that engine. The image operations
(import, load, each followed by removing the image) use a layer of their own, so the engine writes it
and deletes it: Podman 5.8.6 kept an empty deletion staging directory after the tests that remove
images, which is where a deletion that never finished would stay. Every Podman here keeps the archive
an import was sent (its compat API's `api_load.tar…`, in the store's `tmp/` where the plugin's services
stage image copies; by default that is the host's /var/tmp, which no census of the store sees).
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from saveexport import calls, moves, storage
from saveexport.expectations import expect, storage_kept_after

pytestmark = pytest.mark.usefixtures("run_scope")


@pytest.fixture(scope="module")
def tiny_image(engine_ops, run_scope, tmp_path_factory) -> str:
    ref = run_scope.ref("storage-tiny", "latest")
    made = engine_ops.import_(moves.tools_root(tmp_path_factory.mktemp("tiny") / "tools.tar"), ref,
                              changes=['CMD ["/bin/cat", "/bin/sh"]'])
    assert made.ok, made.message
    return ref


def _one_file_layer(path: Path) -> Path:
    """A layer nothing else on the engine holds: one file of content new to every run."""
    data = uuid.uuid4().hex.encode() * 64
    with tarfile.open(path, "w") as tar:
        member = tarfile.TarInfo("storage-probe.txt")
        member.size, member.mode = len(data), 0o644
        tar.addfile(member, io.BytesIO(data))
    return path


def _remove_image(engine_ops, image_id: str) -> None:
    engine_ops.api.remove_image(image_id, force=True, noprune=False)


def _container_operation(operation, engine_ops, tiny_image, tmp_path) -> None:
    created = engine_ops.create(tiny_image, f"storage-{operation.split(',')[0]}")
    assert created.ok, created.message
    cid = created.result["container_id"]
    try:
        started = engine_ops.start(cid)
        assert started.ok, started.message
        engine_ops.api.wait(cid, timeout=60)
        if operation.startswith("export"):
            exported = engine_ops.export(cid, tmp_path / "tiny-export.tar")
            assert exported.ok, exported.message
    finally:
        engine_ops.remove(cid)


def _import(engine_ops, ref: str, tmp_path) -> str:
    imported = engine_ops.import_(_one_file_layer(tmp_path / "layer.tar"), ref)
    assert imported.ok, imported.message
    return imported.result["image_id"] or engine_ops.api.inspect_image(ref)["Id"]


def _image_operation(engine_ops, run_scope, tmp_path) -> None:
    _remove_image(engine_ops, _import(engine_ops, run_scope.ref("storage-probe", "latest"), tmp_path))


def _prepare_load(engine_ops, run_scope, tmp_path) -> Path:
    """An archive of an image the engine then no longer holds, made before the first census."""
    ref = run_scope.ref("storage-probe-load", "latest")
    image_id = _import(engine_ops, ref, tmp_path)
    archive = tmp_path / "probe.tar"
    saved = engine_ops.save(ref, archive)
    assert saved.ok, saved.message
    _remove_image(engine_ops, image_id)
    return archive


def _settled(place, first, wait_s: float = 10.0):
    """The census once the store stops changing: containerd collects a removed image's content and
    snapshots in the background, a moment after the removal answered."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls.pause(0.5)
        again = place.census()
        if again.objects == first.objects:
            return again
        first = again
    return first


def _load_operation(archive: Path, engine_ops) -> None:
    loaded = engine_ops.load(archive)
    assert loaded.ok, loaded.message
    ids = set(loaded.result["loaded_ids"]) | {engine_ops.api.inspect_image(ref)["Id"]
                                               for ref in loaded.result["loaded_refs"]}
    assert ids, f"the load named no image: {loaded.message}"
    for image_id in ids:
        _remove_image(engine_ops, image_id)


OPERATIONS = ["run, then remove", "export, then remove", "import, then remove the image",
              "load, then remove the image"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_storage_kept_after_one_operation(operation, container_engine, engine_ops, tiny_image, tmp_path,
                                          run_scope, claim_evidence):
    watch = container_engine.storage_watch
    place = watch.place if watch is not None else None
    if place is None or place.root is None:
        claim_evidence.observe("storage-operation", operation=operation, measured=False,
                               why=place.why_not if place else "no storage watch")
        pytest.fail(f"the engine's storage cannot be listed here: {place.why_not if place else 'no watch'}",
                    pytrace=False)
    archive = _prepare_load(engine_ops, run_scope, tmp_path) if operation.startswith("load") else None
    before = place.census()
    if archive is not None:
        _load_operation(archive, engine_ops)
    elif operation.startswith("import"):
        _image_operation(engine_ops, run_scope, tmp_path)
    else:
        _container_operation(operation, engine_ops, tiny_image, tmp_path)
    after = _settled(place, place.census())
    kept = storage.kept(before, after)
    counts = {kind: n for kind, n in kept.counts().items() if n and kind not in storage.BOOKKEEPING}
    claim_evidence.observe("storage-operation", operation=operation, measured=True, store=place.store,
                           kept=counts, bytes=storage.measure(place.root, kept), error=kept.error)
    assert not kept.error, kept.error
    expect(storage_kept_after(operation), container_engine.facts).check(
        sorted(counts), f"what the storage keeps after '{operation}' of a tiny image (counts: {counts})")
