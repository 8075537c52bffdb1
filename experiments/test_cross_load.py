"""The cross-load matrix: {save, export} archive × {load, import} — claims C9, C10 and C12."""

from __future__ import annotations

import pytest

from saveexport.expectations import expect, no_command_refused_at
from saveexport.fixtures import PG_ENV

pytestmark = pytest.mark.usefixtures("run_scope")

# The kinds of failure an engine may use for "this archive cannot be loaded": a typed API error
# (HTTP status), or an error inside the load's JSON stream.
LOAD_ERRORS = ("docker.errors.APIError", "docker.errors.ImageLoadError", "saveexport.operations.StreamError")


@pytest.fixture(scope="module")
def archives(request):
    return {"save": request.getfixturevalue("save_archive"), "export": request.getfixturevalue("export_archive")}


def _into(engine_ops, run_scope, archive, archive_kind: str, way_in: str):
    if way_in == "load":
        outcome = engine_ops.load(archive.path)
        image = (outcome.result.get("loaded_refs") or outcome.result.get("loaded_ids") or [None])[0]
    else:
        outcome = engine_ops.import_(archive.path, run_scope.ref(f"xl-{archive_kind}-import", "latest"))
        image = outcome.result.get("image_id")
    return outcome, image


@pytest.mark.claim("C9", "C10", "C12")
@pytest.mark.parametrize("way_in", ["load", "import"])
@pytest.mark.parametrize("archive_kind", ["save", "export"])
def test_cross_load(archive_kind, way_in, archives, engine_ops, run_scope, subject_image, claim_evidence,
                    container_engine):
    archive = archives[archive_kind]
    into, image = _into(engine_ops, run_scope, archive, archive_kind, way_in)
    original = engine_ops.inspect(subject_image.run_ref)["Config"]
    run_default = run_original = None
    rootfs_holds = None
    if into.ok and image:
        run_default = engine_ops.run_probe(image, f"xl-{archive_kind}-{way_in}-default", environment=PG_ENV)
        run_original = engine_ops.run_probe(image, f"xl-{archive_kind}-{way_in}-original",
                                            entrypoint=original.get("Entrypoint"), command=original.get("Cmd"),
                                            environment=PG_ENV)
        rootfs_holds = _paths_present(engine_ops, image, f"xl-{archive_kind}-{way_in}-look")
    claim_evidence.observe("cross-load", archive=archive_kind, way_in=way_in, into=into, image=image,
                           run_default=run_default, run_original=run_original, rootfs_top_level=rootfs_holds)

    if (archive_kind, way_in) == ("export", "load"):
        claim_evidence.verdict("C9", "confirmed" if into.failed else "refuted",
                               f"load of the export archive: {into.error_type}: {into.message}" if into.failed
                               else "load of the export archive succeeded")
        claim_evidence.verdict("C12", "confirmed" if into.failed else "refuted",
                               "load refuses a flat archive: it needs the layered layout")
        assert into.failed and into.error_type in LOAD_ERRORS
    elif (archive_kind, way_in) == ("save", "import"):
        ran = run_default is not None and run_default.ok
        claim_evidence.verdict("C10", "confirmed" if into.ok and not ran else "refuted",
                               f"import of the save archive {'succeeded' if into.ok else 'failed'}; running the "
                               f"image: {run_default.result.get('state')} — {run_default.message}" if run_default
                               else f"import of the save archive failed: {into.message}")
        as_is = bool(rootfs_holds) and "manifest.json" in rootfs_holds and "bin" not in rootfs_holds
        claim_evidence.verdict("C12", "confirmed" if as_is else "refuted",
                               f"import took the save archive's files as they are: of {', '.join(PROBES)}, the "
                               f"image's root holds {', '.join(rootfs_holds or []) or 'none'}")
        assert into.ok
        assert run_default.failed
        expect(no_command_refused_at, container_engine.facts).check(
            run_default.result["state"], "a container of the imported save archive, with no command")
        assert run_original.failed, "the save archive's files hold no runnable entrypoint"
        assert "manifest.json" in rootfs_holds and "bin" not in rootfs_holds
    elif (archive_kind, way_in) == ("export", "import"):
        assert into.ok
        assert run_default.failed
        expect(no_command_refused_at, container_engine.facts).check(
            run_default.result["state"], "a container of the imported export archive, with no command")
    else:  # save → load: the ordinary way
        assert into.ok and run_default.ok


PROBES = ("manifest.json", "repositories", "index.json", "bin", "etc", "usr/local/bin/docker-entrypoint.sh")


def _paths_present(engine_ops, image: str, name: str) -> list[str] | None:
    """Which of PROBES the image's root holds, asked of a created (never started) container.

    HEAD /containers/{id}/archive answers with a stat header only, so nothing is copied.
    """
    created = engine_ops.create(image, name, command=["/nonexistent"])
    if created.failed:
        return None
    cid = created.result["container_id"]
    api = engine_ops.api
    try:
        present = []
        for path in PROBES:
            response = api.head(api._url("/containers/{0}/archive", cid), params={"path": "/" + path})
            if response.status_code == 200:
                present.append(path)
        return present
    finally:
        engine_ops.remove(cid)
