"""Verification of a read archive against the image specs (digests, sizes, required files) and for safety
(members that would land outside an extractor's target: safety.py).

Each violation has a stable code (for machines), the member it concerns, the layer that holds it (for
safety findings; "" for the archive itself), and a sentence (for people) that names the layer too.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass

from .reader import LEGACY, OCI, ROOTFS, Archive, Image, Layer, blob_path
from .safety import WHY, layer_findings, through_symlinks

COMPRESSION_OF_MEDIA = {"": None, "tar": "none", "gzip": "gzip", "zstd": "zstd"}
NAMED_BY_DIGEST = re.compile(r"(?:.*/)?(?:sha256:)?([0-9a-f]{64})(?:\.tar(?:\.gz|\.zst)?|\.json)?")
MAX_PER_CODE = 100  # a hostile layer may hold a million bad names: the first ones, and how many more


@dataclass(frozen=True)
class Violation:
    code: str
    member: str
    detail: str
    layer: str = ""  # the archive member holding `member`, for findings inside a layer

    def to_dict(self) -> dict:
        return asdict(self)


def verify(archive: Archive) -> list[Violation]:
    out: list[Violation] = []
    if archive.layout == OCI:
        out += _oci_layout(archive)
    if archive.layout in (LEGACY, OCI):
        for image in archive.images:
            out += _image(archive, image)
        out += _named_by_digest(archive)
    out += _held_twice(archive)
    out += safety(archive)
    return _capped(out)


def safety(archive: Archive) -> list[Violation]:
    """Safety findings of the outer tar (an export's root, or a save's own members) and of every layer."""
    found: list[Violation] = []
    outer = "the export" if archive.layout == ROOTFS else "the archive itself"

    def add(code: str, layer: str, where: str, member: str, detail: str) -> None:
        found.append(Violation(code, member, f"in {where}, {detail}; {WHY[code]}", layer))

    for code, member, detail in archive.judge.findings + (
            layer_findings(archive.entries.values(), archive.judge.flagged) if archive.layout == ROOTFS else []):
        add(code, "", outer, member, detail)
    if archive.layout == ROOTFS:
        for layer, member, detail in through_symlinks([("", list(archive.entries.values()))]):
            add("written-through-symlink", "", outer, member, detail)
        return found
    judged: set[str] = set()
    for image in archive.images:
        numbered = {layer.member: index + 1 for index, layer in reversed(list(enumerate(image.layers)))}
        for layer in image.layers:
            if layer.member in judged:
                continue
            judged.add(layer.member)
            where = f"layer {numbered[layer.member]} ({layer.member})"
            flagged = layer.judge.flagged if layer.judge else set()
            for code, member, detail in (layer.judge.findings if layer.judge else []) + \
                    layer_findings(layer.entries, flagged):
                add(code, layer.member, where, member, detail)
            if layer.judge and layer.judge.standard_devices:
                archive.notes.append(f"{where} holds the device nodes a container root normally has: "
                                     f"{', '.join(layer.judge.standard_devices)}")
        for layer_member, member, detail in through_symlinks([(layer.member, layer.entries) for layer in image.layers]):
            add("written-through-symlink", layer_member, f"layer {numbered[layer_member]} ({layer_member})",
                member, detail)
    unique = {(v.code, v.layer, v.member): v for v in found}
    return list(unique.values())


def _capped(violations: list[Violation]) -> list[Violation]:
    counts: dict[str, int] = {}
    out = []
    for violation in violations:
        counts[violation.code] = counts.get(violation.code, 0) + 1
        if counts[violation.code] <= MAX_PER_CODE:
            out.append(violation)
    for code, count in counts.items():
        if count > MAX_PER_CODE:
            out.append(Violation(code, "", f"{count - MAX_PER_CODE:,} more {code} violations (listed: the first "
                                            f"{MAX_PER_CODE})"))
    return out


def _held_twice(archive: Archive) -> list[Violation]:
    """A referenced member held twice: a scanner that reads the first copy sees other bytes than docker load."""
    return [Violation("member-held-twice", name, f"the archive holds {name} {count} times; the last copy is the one "
                                                 f"read here, as tar extraction and docker load take it, and a "
                                                 f"reader that stops at the first sees other bytes")
            for name, count in archive.copies.items() if name in archive.referenced]


def _named_by_digest(archive: Archive) -> list[Violation]:
    """Layers named after a digest (skopeo's and Podman's <hex>.tar, go-containerregistry's <hex>.tar.gz)
    must hash to it; blobs/ are checked with the OCI layout."""
    out = []
    layers: dict[str, Layer] = {layer.member: layer for image in archive.images for layer in image.layers}
    for name, layer in layers.items():
        match = NAMED_BY_DIGEST.fullmatch(name)
        if not match or name.startswith("blobs/") or not layer.digest:
            continue
        if layer.digest != "sha256:" + match.group(1) and layer.diff_id != "sha256:" + match.group(1):
            out.append(Violation("blob-digest-mismatch", name, f"the layer's bytes hash to {layer.digest}, its "
                                                               f"name says sha256:{match.group(1)}"))
    return out


def _image(archive: Archive, image: Image) -> list[Violation]:
    out = []
    config = image.config
    for key in ("architecture", "os", "rootfs"):
        if key not in config:
            out.append(Violation("config-missing-field", image.config_member, f"the image config has no {key!r}"))
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(image.layers):
        out.append(Violation("layer-count-mismatch", image.config_member,
                             f"the config lists {len(diff_ids)} layers (diff_ids), the manifest {len(image.layers)}"))
    for index, (layer, expected) in enumerate(zip(image.layers, diff_ids)):
        if layer.diff_id and layer.diff_id != expected:
            out.append(Violation("layer-diff-id-mismatch", layer.member,
                                 f"layer {index + 1}'s uncompressed content hashes to {layer.diff_id}, the config "
                                 f"says {expected}"))
    name = posixpath.basename(image.config_member)
    declared = re.fullmatch(r"(?:sha256:)?([0-9a-f]{64})(\.json)?", name)
    document = archive.documents.get(image.config_member)
    if declared and document and document.digest != "sha256:" + declared.group(1):
        out.append(Violation("config-digest-mismatch", image.config_member,
                             f"the config's bytes hash to {document.digest}, its name says sha256:{declared.group(1)}"))
    for index, (layer, media) in enumerate(zip(image.layers, image.media_types)):
        declared_compression = media.rsplit("+", 1)[1] if "+" in media else ("none" if media else "")
        if declared_compression and declared_compression != layer.compression:
            out.append(Violation("layer-media-type-mismatch", layer.member,
                                 f"layer {index + 1} is declared {media} but is {layer.compression}-compressed"))
    return out


def _oci_layout(archive: Archive) -> list[Violation]:
    out = []
    layout = archive.documents.get("oci-layout")
    version = (layout.data or {}).get("imageLayoutVersion") if layout and isinstance(layout.data, dict) else None
    if version != "1.0.0":
        out.append(Violation("oci-layout-version", "oci-layout",
                             f"imageLayoutVersion is {version!r}, the spec requires '1.0.0'"))
    index = archive.documents.get("index.json")
    if not index or not isinstance(index.data, dict) or index.data.get("schemaVersion") != 2:
        out.append(Violation("index-schema-version", "index.json", "index.json must have schemaVersion 2"))
    # Every blob must hash to its name.
    for name, entry in archive.entries.items():
        match = re.fullmatch(r"blobs/([a-z0-9]+)/([0-9a-f]+)", name)
        if not match or entry.type != "file":
            continue
        actual = archive.layers[name].digest if name in archive.layers else \
            archive.documents[name].digest if name in archive.documents else None
        expected = f"{match.group(1)}:{match.group(2)}"
        if match.group(1) == "sha256" and actual and actual != expected:
            out.append(Violation("blob-digest-mismatch", name, f"the blob's bytes hash to {actual}"))
    # Every descriptor's size must be the blob's size.
    for descriptor in _descriptors(archive):
        path = blob_path(descriptor)
        entry = archive.entries.get(path)
        if entry is not None and "size" in descriptor and descriptor["size"] != entry.size:
            out.append(Violation("blob-size-mismatch", path,
                                 f"a descriptor says {descriptor['size']:,} bytes, the blob has {entry.size:,}"))
    return out


def _descriptors(archive: Archive) -> list[dict]:
    """Descriptors from index.json and every manifest the archive holds (already read, bounded)."""
    found: list[dict] = []
    for document in archive.documents.values():
        data = document.data
        if not isinstance(data, dict):
            continue
        for key in ("manifests", "layers"):
            for item in data.get(key) or []:
                if isinstance(item, dict) and "digest" in item:
                    found.append(item)
        if isinstance(data.get("config"), dict) and "digest" in data["config"]:
            found.append(data["config"])
    return found
