"""Sizes and structure of the two archives, and the flattened image against the export: claim C11;
and how a save archive's layers are stored, which decides whether C11 holds."""

from __future__ import annotations

import pytest

from saveexport.archives import ROOTFS, Archive, compare, decompose, flatten, verify
from saveexport.expectations import built_layer_compression, expect, save_layout

pytestmark = pytest.mark.usefixtures("run_scope")


@pytest.mark.claim("C11")
def test_sizes_structure_and_flatten_diff(engine_ops, subject_image, subject_container, save_archive, export_archive,
                                          claim_evidence, container_engine):
    runtime = [change["Path"] for change in engine_ops.api.diff(subject_container) or []]
    image_size = engine_ops.inspect(subject_image.run_ref).get("Size")
    save, export = save_archive.analysis, export_archive.analysis
    assert export.layout == ROOTFS
    image = save.images[0]
    flat = flatten(image)
    volumes = (image.config.get("config") or {}).get("Volumes") or {}
    diff = compare(flat, export.rootfs_entries(), volumes=volumes, runtime_paths=runtime)
    parts = decompose(save, image, flat, export, diff)
    top_level = sorted({name.split("/", 1)[0] for name in save.entries if name})
    layout = save.layout
    violations = verify(save)

    claim_evidence.observe("sizes", save_bytes=save_archive.size, export_bytes=export_archive.size,
                           image_size=image_size)
    claim_evidence.observe("save-structure", layout=layout, top_level=top_level,
                           layers=[layer.to_dict() for layer in flat.layers], repo_tags=image.repo_tags,
                           violations=violations)
    claim_evidence.observe("decomposition", **parts)
    claim_evidence.observe("flatten-diff", image_files=diff.image_files, export_files=diff.export_files,
                           same_files=diff.same_files, by_cause=diff.by_cause(),
                           differences=[d.to_dict() for d in diff.differences], runtime_changes=runtime)

    smaller = export_archive.size < save_archive.size
    gap = save_archive.size - export_archive.size
    claim_evidence.verdict("C11", "confirmed" if smaller else "refuted",
                           f"export {export_archive.size:,} B vs save {save_archive.size:,} B "
                           f"({'smaller' if smaller else 'not smaller'} by {abs(gap):,} B)")
    shadowed = parts["shadowed_by_later_layers"]
    claim_evidence.verdict(
        "C11", "confirmed" if shadowed > 0 and shadowed >= 0.5 * gap else "refuted",
        f"bytes in layers that later layers hide: {shadowed:,} B of the {gap:,} B gap; the rest is tar "
        f"overhead and metadata (save {parts['layer_tar_overhead'] + parts['save_outer_tar_overhead']:,} B "
        f"+ {parts['save_metadata_files']:,} B, export {-parts['export_tar_overhead']:,} B)")
    unexplained = diff.by_cause().get("unexplained", {"paths": 0})["paths"]
    claim_evidence.verdict("C11", "confirmed" if unexplained == 0 else "refuted",
                           f"the flattened layers match the export on {diff.same_files:,} of {diff.image_files:,} "
                           f"paths; every difference is explained (container-only files, volume, runtime changes)"
                           if unexplained == 0 else f"{unexplained} differences are not explained")
    # The accounting must add up exactly, whatever the engine.
    assert parts["total"] == parts["check_save_minus_export"]
    assert unexplained == 0, [d.to_dict() for d in diff.differences if d.cause == "unexplained"][:10]
    expect(save_layout, container_engine.facts).check(layout, "the layout docker save writes")
    assert violations == [], "the engine's own save archive should verify against the image specs"


HOW = {"present": "was already here", "pulled": "was pulled here", "built": "was built here",
       "cached-build": "was built here earlier"}
BUILT_LAYER = """FROM {base}
RUN echo "a layer this engine built" > /etc/saveexport-built-layer
"""


@pytest.mark.claim("C11")
def test_save_writes_each_layer_as_the_store_holds_it(engine_ops, subject_image, save_archive, run_scope, archive_dir,
                                                     claim_evidence, container_engine):
    """One engine, one archive, two kinds of layer: what a parser of save archives must expect."""
    built = engine_ops.build(BUILT_LAYER.format(base=subject_image.run_ref), run_scope.ref("built-layer"))
    assert built.ok, built.message
    path = archive_dir / "built-layer-save.tar"
    saved = engine_ops.save(built.result["ref"], path)
    assert saved.ok, saved.message
    image = Archive(path).images[0]
    base, new = image.layers[:-1], image.layers[-1]
    subject_layers = save_archive.analysis.images[0].layers
    arrived_by_load = "streamed from" in subject_image.note
    claim_evidence.observe("layer-compression", subject_obtained=subject_image.obtained,
                           subject_arrived_by_load=arrived_by_load,
                           subject_layers=sorted({layer.compression for layer in subject_layers}),
                           built_layer=new.compression, built_layer_bytes=new.size,
                           built_layer_uncompressed_bytes=new.uncompressed_size, save=saved)
    compressed = [layer for layer in subject_layers if layer.compression != "none"]
    claim_evidence.verdict(
        "C11", "confirmed" if not compressed else "refuted",
        f"the subject's layers are saved {'compressed' if compressed else 'uncompressed'} "
        f"({', '.join(sorted({layer.compression for layer in subject_layers}))}; the image "
        f"{'arrived by load' if arrived_by_load else HOW.get(subject_image.obtained, subject_image.obtained)}); "
        f"a layer built here is saved {new.compression}")
    expect(built_layer_compression, container_engine.facts).check(new.compression, "how save writes a layer "
                                                                                    "built here")
    # the layers it shares with the subject are the same blobs, written the same way
    assert [layer.compression for layer in base] == [layer.compression for layer in subject_layers]
