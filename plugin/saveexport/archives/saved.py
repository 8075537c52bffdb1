"""Reading `docker save` archives: the legacy layout and the OCI image layout of Docker 25+.

The outer tar is indexed once (headers only; data is skipped by seeking), then each layer is
streamed from its position in the file: no archive or layer is ever held in memory.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ArchiveError
from .entries import Entry, iter_entries, normalise

MAX_JSON = 16 << 20  # manifests and configs are kilobytes; refuse to parse anything absurd

LEGACY = "docker-legacy"  # manifest.json + <id>/layer.tar (+ repositories, <id>/json, VERSION)
OCI = "oci-image-layout"  # oci-layout + index.json + blobs/sha256 (Docker 25+ adds manifest.json)
ROOTFS = "rootfs"  # a flat file system: docker export


@dataclass
class Layer:
    member: str  # path of the layer inside the archive
    size: int  # bytes of the layer as stored (compressed or not)
    compression: str = "none"


@dataclass
class SavedImage:
    config_member: str
    repo_tags: list[str]
    layers: list[Layer]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def image_id(self) -> str:
        base = posixpath.basename(self.config_member)
        return "sha256:" + base.removesuffix(".json")


class Archive:
    """An indexed archive file: its layout, and for save archives its images and layers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            self._tar = tarfile.open(self.path, mode="r:")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"{self.path} is not a readable tar archive ({exc})") from exc
        try:
            for info in self._tar:
                self.members[normalise(info.name)] = info
            self._tar.members = []  # the dict above is the one index we keep
        except (tarfile.TarError, OSError, EOFError) as exc:
            self._tar.close()
            raise ArchiveError(f"{self.path} is not a readable tar archive ({exc})") from exc
        try:
            self.layout = self._detect()
            self.images: list[SavedImage] = self._read_images() if self.layout != ROOTFS else []
        except BaseException:
            self._tar.close()
            raise

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- detection ----------------------------------------------------------------------------------
    def _detect(self) -> str:
        names = self.members
        if "oci-layout" in names and "index.json" in names:
            return OCI
        if "manifest.json" in names:
            return LEGACY
        if "repositories" in names or any(n.endswith("/layer.tar") for n in names):
            raise ArchiveError(f"{self.path} is a pre-1.10 docker save archive (no manifest.json); "
                               f"load it into an engine and save it again")
        return ROOTFS

    @property
    def has_docker_manifest(self) -> bool:
        return "manifest.json" in self.members

    # -- metadata -----------------------------------------------------------------------------------
    def read_json(self, name: str) -> Any:
        info = self._resolve(name)
        if info.size > MAX_JSON:
            raise ArchiveError(f"{self.path}: {name} is {info.size} bytes; refusing to parse it")
        handle = self._tar.extractfile(info)
        if handle is None:
            raise ArchiveError(f"{self.path}: {name} is not a regular file")
        try:
            return json.load(handle)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveError(f"{self.path}: {name} is not valid JSON ({exc})") from exc

    def _resolve(self, name: str, depth: int = 0) -> tarfile.TarInfo:
        """The member called `name`, following links inside the archive (Docker links repeated layers)."""
        key = normalise(name)
        info = self.members.get(key)
        if info is None:
            raise ArchiveError(f"{self.path}: the manifest names {name}, which the archive does not hold")
        if (info.issym() or info.islnk()) and depth < 8:
            target = info.linkname if info.islnk() else posixpath.join(posixpath.dirname(key), info.linkname)
            return self._resolve(target, depth + 1)
        if info.issym() or info.islnk():
            raise ArchiveError(f"{self.path}: {name} is a chain of links too long to follow")
        return info

    def _read_images(self) -> list[SavedImage]:
        if self.has_docker_manifest:
            manifest = self.read_json("manifest.json")
            if not isinstance(manifest, list):
                raise ArchiveError(f"{self.path}: manifest.json is not a list of images")
            images = []
            for item in manifest:
                layers = [self._layer(name) for name in item.get("Layers") or []]
                image = SavedImage(config_member=item.get("Config", ""), repo_tags=item.get("RepoTags") or [],
                                   layers=layers)
                image.config = self.read_json(image.config_member)
                images.append(image)
            return images
        return self._read_oci_index()

    def _read_oci_index(self) -> list[SavedImage]:
        images = []
        for descriptor in self.read_json("index.json").get("manifests") or []:
            images.extend(self._oci_manifest(descriptor, depth=0))
        return images

    def _oci_manifest(self, descriptor: dict, depth: int) -> list[SavedImage]:
        if depth > 4:
            raise ArchiveError(f"{self.path}: OCI indexes nest deeper than 4")
        blob = _blob_path(descriptor)
        document = self.read_json(blob)
        if "manifests" in document:  # an index pointing to per-platform manifests
            out = []
            for child in document["manifests"]:
                out.extend(self._oci_manifest(child, depth + 1))
            return out
        tag = (descriptor.get("annotations") or {}).get("io.containerd.image.name") or \
            (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        image = SavedImage(config_member=_blob_path(document["config"]), repo_tags=[tag] if tag else [],
                           layers=[self._layer(_blob_path(layer)) for layer in document.get("layers") or []])
        image.config = self.read_json(image.config_member)
        return [image]

    def _layer(self, name: str) -> Layer:
        info = self._resolve(name)
        return Layer(member=normalise(name), size=info.size, compression=self._compression(info))

    def _compression(self, info: tarfile.TarInfo) -> str:
        handle = self._tar.extractfile(info)
        magic = handle.read(6) if handle else b""
        if magic.startswith(b"\x1f\x8b"):
            return "gzip"
        if magic.startswith(b"\x28\xb5\x2f\xfd"):
            return "zstd"
        if magic.startswith(b"\xfd7zXZ"):
            return "xz"
        return "none"

    # -- contents -----------------------------------------------------------------------------------
    def layer_entries(self, layer: Layer) -> Iterator[Entry]:
        if layer.compression == "zstd":
            raise ArchiveError(f"{self.path}: layer {layer.member} is zstd-compressed, which this reader "
                               f"does not decompress yet")
        info = self._resolve(layer.member)
        handle = self._tar.extractfile(info)
        size = info.size if layer.compression == "none" else None
        for entry, _ in iter_entries(handle, f"layer {layer.member} of {self.path}", size):
            yield entry

    def rootfs_entries(self) -> Iterator[Entry]:
        """The entries of a flat archive (docker export), from the index already read."""
        for info in self.members.values():
            yield Entry.from_tarinfo(info)

    # -- sizes --------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def member_bytes(self) -> int:
        """Sum of the regular files' sizes; the rest of the file is tar headers and padding."""
        return sum(i.size for i in self.members.values() if i.isreg())


def _blob_path(descriptor: dict) -> str:
    digest = str(descriptor.get("digest", ""))
    algorithm, _, value = digest.partition(":")
    if not value or "/" in value or not algorithm.isalnum():
        raise ArchiveError(f"an OCI descriptor has an unusable digest {digest!r}")
    return f"blobs/{algorithm}/{value}"
