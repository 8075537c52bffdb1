"""What `saveexport inspect` and `saveexport diff` tell, as plain data (JSON-ready)."""

from __future__ import annotations

from typing import Any

from .diff import compare, decompose
from .flatten import flatten
from .metadata import KIND_EXPORT, KIND_IMAGE, RUN_CONFIG, image_metadata
from .reader import ROOTFS, Archive
from .verify import verify


def inspect_archive(archive: Archive) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": str(archive.path), "bytes": archive.size, "outer_compression": archive.outer_compression,
        "layout": archive.layout, "kind": KIND_EXPORT if archive.layout == ROOTFS else KIND_IMAGE,
        "entries": len(archive.entries),
        "unsafe_names": archive.unsafe_names[:50],
    }
    if not archive.read_layers:  # --metadata: manifests, indexes and configs; nothing verified
        out["images"] = [image_metadata(image.image_id, image.repo_tags, image.config_member, image.manifest_digest,
                                        image.platform, image.config) for image in archive.images]
        out["violations"] = []
        out["verified"] = False
        out["notes"] = archive.notes
        return out
    if archive.layout == ROOTFS:
        top = sorted({name.split("/", 1)[0] for name in archive.entries if name})
        out["rootfs"] = {"top_level": top, "file_bytes": archive.member_bytes,
                         "container_files": [p for p in (".dockerenv", "run/.containerenv", "etc/hostname",
                                                         "etc/hosts", "etc/resolv.conf") if p in archive.entries]}
        out["violations"] = [v.to_dict() for v in verify(archive)]
        out["notes"] = archive.notes
        return out
    images = []
    for image in archive.images:
        flat = flatten(image)
        config = image.config.get("config") or {}
        layer_bytes = sum(layer.size for layer in flat.layers)
        images.append({
            "id": image.image_id, "tags": image.repo_tags, "config_member": image.config_member,
            "manifest_digest": image.manifest_digest, "platform": image.platform,
            "diff_ids": list((image.config.get("rootfs") or {}).get("diff_ids") or []),
            "config": {key: config.get(key) for key in RUN_CONFIG if config.get(key)},
            "layers": [dict(stat.to_dict(), digest=layer.digest, diff_id=layer.diff_id,
                            uncompressed_size=layer.uncompressed_size)
                       for stat, layer in zip(flat.layers, image.layers)],
            "layer_bytes": layer_bytes, "visible_bytes": flat.content_bytes,
            "shadowed_bytes": flat.shadowed_bytes, "files": len(flat.files),
        })
    out["images"] = images
    out["violations"] = [v.to_dict() for v in verify(archive)]
    out["digests_checked"] = archive.hash_layers
    out["notes"] = archive.notes
    return out


def diff_archives(save: Archive, export: Archive, image_index: int = 0) -> dict[str, Any]:
    image = save.images[image_index]
    flat = flatten(image)
    volumes = (image.config.get("config") or {}).get("Volumes") or {}
    # Offline there is no `docker diff`: what is neither container-only nor a volume was changed in the container.
    differences = compare(flat, export.rootfs_entries(), volumes=volumes, runtime_paths=None)
    parts = decompose(save, image, flat, export, differences)
    return {"save": str(save.path), "export": str(export.path), "image": image.image_id, "tags": image.repo_tags,
            "save_bytes": save.size, "export_bytes": export.size, "image_files": differences.image_files,
            "export_files": differences.export_files, "same_files": differences.same_files,
            "by_cause": differences.by_cause(), "decomposition": parts,
            "differences": [d.to_dict() for d in differences.differences]}
