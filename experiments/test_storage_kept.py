"""What an engine's storage keeps after one operation alone, on a tiny image: the storage census found
Docker 26.1.5 (overlay2) keeping read-write layers after the tests that export a container, which
20.10.24 and 28.5.2 did not (upstream: moby/moby#48516, "docker export container creates orphan
layers", reported on 27.2.1). Each operation here runs alone between two censuses of the engine's own
storage, and what it left is asserted against what was measured for that engine.
"""

from __future__ import annotations

import pytest

from saveexport import moves, storage
from saveexport.expectations import expect, storage_kept_after

pytestmark = pytest.mark.usefixtures("run_scope")


@pytest.fixture(scope="module")
def tiny_image(engine_ops, run_scope, tmp_path_factory) -> str:
    ref = run_scope.ref("storage-tiny", "latest")
    made = engine_ops.import_(moves.tools_root(tmp_path_factory.mktemp("tiny") / "tools.tar"), ref,
                              changes=['CMD ["/bin/cat", "/bin/sh"]'])
    assert made.ok, made.message
    return ref


@pytest.mark.parametrize("operation", ["run, then remove", "export, then remove"])
def test_storage_kept_after_one_operation(operation, container_engine, engine_ops, tiny_image, tmp_path,
                                          claim_evidence):
    watch = container_engine.storage_watch
    place = watch.place if watch is not None else None
    if place is None or place.root is None:
        claim_evidence.observe("storage-operation", operation=operation, measured=False,
                               why=place.why_not if place else "no storage watch")
        pytest.fail(f"the engine's storage cannot be listed here: {place.why_not if place else 'no watch'}",
                    pytrace=False)
    before = storage.census(place.root, place.store)
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
    after = storage.census(place.root, place.store)
    kept = storage.kept(before, after)
    counts = {kind: n for kind, n in kept.counts().items() if n and kind not in storage.BOOKKEEPING}
    claim_evidence.observe("storage-operation", operation=operation, measured=True, store=place.store,
                           kept=counts, bytes=storage.measure(place.root, kept), error=kept.error)
    assert not kept.error, kept.error
    expect(storage_kept_after(operation), container_engine.facts).check(
        sorted(counts), f"what the storage keeps after '{operation}' of a tiny image (counts: {counts})")
