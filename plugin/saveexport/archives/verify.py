"""Verification of a read archive against the image specs: digests, sizes, required files.

Each violation has a stable code (for machines), the member it concerns, and a sentence (for people).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass

from .reader import LEGACY, OCI, Archive, Image, blob_path

COMPRESSION_OF_MEDIA = {"": None, "tar": "none", "gzip": "gzip", "zstd": "zstd"}


@dataclass(frozen=True)
class Violation:
    code: str
    member: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def verify(archive: Archive) -> list[Violation]:
    out: list[Violation] = []
    if archive.layout == OCI:
        out += _oci_layout(archive)
    if archive.layout in (LEGACY, OCI):
        for image in archive.images:
            out += _image(archive, image)
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
    declared = re.fullmatch(r"([0-9a-f]{64})(\.json)?", name)
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
