"""C7: a base image made from a customised container by export/import, against the commit route.

The container is customised the way people do it by hand: a file added and a Debian package
installed (dpkg -i of a .deb fetched from the Debian mirror, so the container needs no network).
Then: export -> import as a base, and commit as a base; an image is built FROM each and run.
"""

from __future__ import annotations

import pytest

from saveexport.errors import SaveexportError
from saveexport.imageconfig import run_config
from saveexport.provision import fetch_deb

pytestmark = pytest.mark.usefixtures("run_scope")

PACKAGE = "tree"  # small, depends on libc6 only: installs on any Debian-based subject
MARKER = "customised by saveexport for C7"
DERIVED = """FROM {base}
RUN test -f /etc/saveexport-c7 && tree --version
LABEL io.saveexport.route="{route}"
CMD ["sh", "-c", "cat /etc/saveexport-c7 && tree --version"]
"""


def _shape(engine_ops, ref: str) -> dict:
    image = engine_ops.inspect(ref)
    config = run_config(image)
    return {"layers": len(image["RootFS"].get("Layers") or []), "size": int(image.get("Size") or 0),
            "history_entries": len(engine_ops.history(ref)),
            "config": {k: v for k, v in config.items() if k != "Labels"}}


@pytest.fixture
def customised_container(engine_ops, subject_image, saveexport_settings, debian_mirrors):
    """A running container of the subject with a file added and a package installed."""
    try:
        deb = fetch_deb(PACKAGE, saveexport_settings.debian_suite, mirrors=debian_mirrors,
                        needed_by=f"the C7 experiment (the package {PACKAGE})")
    except SaveexportError as exc:
        pytest.fail(f"the C7 scenario installs a Debian package: {exc}", pytrace=False)
    created = engine_ops.create(subject_image.run_ref, "c7-customised", command=["sleep", "infinity"])
    assert created.ok, created.message
    cid = created.result["container_id"]
    try:
        assert engine_ops.start(cid).ok
        steps = [engine_ops.put_file(cid, deb, "/tmp"),
                 engine_ops.exec(cid, ["dpkg", "-i", f"/tmp/{deb.name}"]),
                 engine_ops.exec(cid, ["rm", f"/tmp/{deb.name}"]),
                 engine_ops.exec(cid, ["sh", "-c", f"echo '{MARKER}' > /etc/saveexport-c7"])]
        failed = [s for s in steps if s.failed]
        assert not failed, f"customising the container failed: {failed[0].op}: {failed[0].message}"
        yield cid, deb.name, steps
    finally:
        engine_ops.remove(cid)


@pytest.mark.claim("C7")
def test_base_image_from_export_builds_and_runs_but_keeps_no_config(engine_ops, run_scope, subject_image,
                                                                    customised_container, archive_dir,
                                                                    claim_evidence):
    cid, deb, steps = customised_container
    exported = engine_ops.export(cid, archive_dir / "c7-customised-export.tar")
    assert exported.ok, exported.message
    routes = {
        "export/import": engine_ops.import_(archive_dir / "c7-customised-export.tar", run_scope.ref("c7-base-import")),
        "commit": engine_ops.commit(cid, run_scope.ref("c7-base-commit")),
    }
    results = {}
    for route, made in routes.items():
        assert made.ok, f"{route}: {made.message}"
        base = made.result["ref"]
        built = engine_ops.build(DERIVED.format(base=base, route=route), run_scope.ref(f"c7-derived-{route[:6]}"))
        ran = engine_ops.run_probe(built.result.get("ref") or "", f"c7-run-{route[:6]}") if built.ok else None
        results[route] = {
            "base": made, "base_shape": _shape(engine_ops, base), "build": built,
            "derived_shape": _shape(engine_ops, built.result["ref"]) if built.ok else None, "run": ran,
            "customisation_present": bool(ran and ran.ok and MARKER in "\n".join(ran.result.get("logs") or [])
                                          and any("tree v" in line for line in ran.result.get("logs") or [])),
        }
    claim_evidence.observe("base-image", subject=subject_image.run_ref, package=deb, customise=steps,
                           export=exported, routes=results)

    by_import, by_commit = results["export/import"], results["commit"]
    works = by_import["build"].ok and by_import["customisation_present"]
    claim_evidence.verdict("C7", "confirmed" if works else "refuted",
                           f"an image built FROM the imported export ran and had the added file and the "
                           f"installed package ({by_import['base_shape']['layers']} layer base, "
                           f"{by_import['base_shape']['size']:,} bytes; the commit route's base: "
                           f"{by_commit['base_shape']['layers']} layers, {by_commit['base_shape']['size']:,} bytes)"
                           if works else f"the import route failed: {by_import['build'].message or by_import['run']}")
    kept = {k for k, v in by_import["base_shape"]["config"].items() if v and k != "Env"}
    claim_evidence.verdict("C7", "confirmed" if not kept else "refuted",
                           "the imported base keeps none of the subject's run settings (no CMD, ENTRYPOINT, "
                           "volumes or ports): whoever builds on it must set them; the committed base keeps them")
    assert works, by_import
    assert by_commit["build"].ok and by_commit["customisation_present"], by_commit
    assert by_import["base_shape"]["layers"] == 1
    assert by_commit["base_shape"]["layers"] == _shape(engine_ops, subject_image.run_ref)["layers"] + 1
    assert not by_import["base_shape"]["config"]["Cmd"] and by_commit["base_shape"]["config"]["Cmd"]
