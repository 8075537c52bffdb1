"""The flattened image against a container's export: what differs, why, and where the bytes went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .entries import Entry
from .flatten import Flattened
from .reader import Archive, Image

# Files the engine puts into every container (mount points and bind-mount targets).
CONTAINER_ONLY = {".dockerenv", "run/.containerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"}  # .containerenv: Podman
CONTAINER_ONLY_DIRS = ("dev", "proc", "sys", "run/.containerenv")
COMPARED = ("type", "mode", "uid", "gid", "size", "linkname")


@dataclass
class Difference:
    path: str
    where: str  # image-only | export-only | differs
    cause: str  # container-only | volume | runtime-change | changed-in-container (offline) | unexplained
    fields: dict[str, tuple] = field(default_factory=dict)
    image_bytes: int = 0
    export_bytes: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "where": self.where, "cause": self.cause,
                "fields": {k: list(v) for k, v in self.fields.items()},
                "image_bytes": self.image_bytes, "export_bytes": self.export_bytes}


@dataclass
class FlattenDiff:
    differences: list[Difference]
    image_files: int
    export_files: int
    same_files: int

    def by_cause(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for d in self.differences:
            row = out.setdefault(d.cause, {"paths": 0, "image_bytes": 0, "export_bytes": 0})
            row["paths"] += 1
            row["image_bytes"] += d.image_bytes
            row["export_bytes"] += d.export_bytes
        return out


def compare(flat: Flattened, export_entries: Iterable[Entry], *, volumes: Iterable[str] = (),
            runtime_paths: Iterable[str] | None = ()) -> FlattenDiff:
    """Compare; `volumes` are the image's declared volumes, `runtime_paths` what `docker diff` listed.

    With runtime_paths None (offline, no engine to ask) the rest is put down to the container's changes.
    """
    volume_roots = tuple(v.strip("/") for v in volumes)
    runtime = {p.strip("/") for p in runtime_paths or ()}
    fallback = "changed-in-container" if runtime_paths is None else "unexplained"
    exported = {e.path: e for e in export_entries if e.path != ""}
    image = {p: e for p, e in flat.files.items() if p != ""}
    diffs: list[Difference] = []
    same = 0

    def cause(path: str) -> str:
        if path in CONTAINER_ONLY or path.split("/", 1)[0] in CONTAINER_ONLY_DIRS:
            return "container-only"
        if any(path == v or path.startswith(v + "/") for v in volume_roots):
            return "volume"
        if path in runtime or any(path.startswith(r + "/") for r in runtime if r):
            return "runtime-change"
        return fallback

    for path, entry in image.items():
        other = exported.get(path)
        if other is None:
            diffs.append(Difference(path, "image-only", cause(path), image_bytes=entry.size))
            continue
        changed = {f: (getattr(entry, f), getattr(other, f)) for f in COMPARED
                   if getattr(entry, f) != getattr(other, f)}
        if changed:
            diffs.append(Difference(path, "differs", cause(path), changed, entry.size, other.size))
        else:
            same += 1
    for path, entry in exported.items():
        if path not in image:
            diffs.append(Difference(path, "export-only", cause(path), export_bytes=entry.size))
    diffs.sort(key=lambda d: d.path)
    return FlattenDiff(diffs, image_files=len(image), export_files=len(exported), same_files=same)


def decompose(save: Archive, image: Image, flat: Flattened, export: Archive, diff: FlattenDiff) -> dict[str, int]:
    """save bytes − export bytes, split into causes that add up exactly.

    save = Σ layer content + Σ layer tar overhead + Σ compression + metadata files + outer tar overhead
    export = export content + export tar overhead
    Σ layer content = visible image content + shadowed bytes
    export content = visible image content + (export-only and changed bytes) − (image-only bytes)
    """
    stored = {layer.member: layer for layer in image.layers}  # a layer repeated in the image is stored once
    layer_bytes = sum(layer.size for layer in stored.values())
    layer_content = sum(layer.content_bytes for layer in stored.values())
    metadata = save.member_bytes - layer_bytes
    outer_overhead = save.size - save.member_bytes
    export_content = export.member_bytes
    applied_content = sum(layer.content_bytes for layer in image.layers)
    parts = {
        "shadowed_by_later_layers": flat.shadowed_bytes,
        "layer_tar_overhead": sum(layer.uncompressed_size - layer.content_bytes for layer in stored.values()),
        "layer_compression": sum(layer.size - layer.uncompressed_size for layer in stored.values()),
        "repeated_layers_stored_once": -(applied_content - layer_content),
        "save_metadata_files": metadata,
        "save_outer_tar_overhead": outer_overhead,
        "export_tar_overhead": -(export.size - export_content),
        "export_minus_image_content": -(export_content - flat.content_bytes),
    }
    parts["total"] = sum(parts.values())
    parts["check_save_minus_export"] = save.size - export.size
    parts["diff_bytes_by_cause"] = {k: v["export_bytes"] - v["image_bytes"] for k, v in diff.by_cause().items()}
    return parts
