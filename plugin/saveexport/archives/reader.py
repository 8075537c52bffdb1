"""Reading image and container archives, whatever their layout and whoever wrote them.

Detected from content, never from the file name: Docker's legacy save layout (also Podman's and
skopeo's docker-archive, go-containerregistry's tarballs), the OCI image layout (Docker 25+,
containerd's store, Podman's and skopeo's oci-archive, buildah), and flat root file systems (docker
export); each optionally inside gzip, xz, bzip2 or zstd.

Members are found by what the manifest or index names, wherever they stand in the tar and whatever
they are called (go-containerregistry writes its config as `sha256:<hex>` and manifest.json last).
How the bytes are reached depends on the input:

- a plain tar in a file (what engines write): one walk over the headers, seeking past the data;
  then only the members the manifests reference are read, in place. Each layer's headers are walked
  and its bytes hashed (on a second thread) as it is read.
- a pipe, standard input, or a compressed archive: one pass, front to back. JSON members are held
  (at most `Limits.max_held` bytes in all) and every member that looks like a tar or a compressed
  tar is read as a layer as it streams past, until the manifest says which of them matter. A
  compressed archive in a file is read again for a referenced member that was not held; a pipe
  cannot be, and that is one line.

Nothing is held in memory but headers, the small JSON documents and one compact entry list per layer.
Where a tar holds a member more than once, the last copy is the one read, as tar extraction and
`docker load` take it.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import posixpath
import re
import stat
import sys
import tarfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import ArchiveError
from . import ustar
from .entries import Entry, normalise
from .safety import Judge, is_suspect
from .source import (DEFAULT_LIMITS, CountingReader, HashingReader, Limits, PeekReader, Region, bounded_tarinfo,
                     compression_of, decompressed)

LEGACY = "docker-legacy"  # manifest.json + layers and configs wherever it says (+ repositories, <id>/json, VERSION)
OCI = "oci-image-layout"  # oci-layout + index.json + blobs/<alg>/<hex> (Docker 25+ adds manifest.json)
ROOTFS = "rootfs"  # a flat file system: docker export

DATA_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)
STDIN = "-"
ATTESTATION = "attestation-manifest"  # BuildKit's vnd.docker.reference.type for provenance manifests


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return ()
    return (zstandard.ZstdError,)


@dataclass
class Layer:
    """One layer as stored: where, how big, how compressed, its digests and its entries."""

    member: str
    size: int  # stored bytes
    compression: str
    digest: str  # sha256 of the stored bytes (an OCI blob's name)
    diff_id: str  # sha256 of the uncompressed tar (what an image config lists)
    uncompressed_size: int
    entries: list[Entry] = field(default_factory=list, repr=False)
    judge: Judge | None = field(default=None, repr=False)  # what its raw headers showed (safety.py)

    @property
    def content_bytes(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass
class Image:
    config_member: str
    config: dict[str, Any]
    repo_tags: list[str]
    layers: list[Layer]
    media_types: list[str] = field(default_factory=list)  # declared per layer (OCI), for verification
    config_digest: str = ""  # sha256 of the config's bytes: the image id
    manifest_digest: str = ""  # the OCI manifest's digest, where an index names one
    platform: str = ""

    @property
    def image_id(self) -> str:
        if self.config_digest:
            return self.config_digest
        name = posixpath.basename(self.config_member).removesuffix(".json")
        return name if name.startswith("sha256:") else "sha256:" + name


@dataclass(frozen=True)
class Document:
    """A JSON member: parsed, with the digest and size of its raw bytes."""

    data: Any
    digest: str
    size: int


class Archive:
    """An archive read; afterwards everything is in memory in summary form."""

    def __init__(self, path: str | Path, limits: Limits = DEFAULT_LIMITS, *, read_layers: bool = True,
                 hash_layers: bool = True):
        """`read_layers=False` reads the manifests, indexes and configs only (images get no layers), seeking
        past the layers where the input allows; `hash_layers=False` skips the digests of uncompressed layers
        in uncompressed archives (their `digest` is then ""). `path` "-" is standard input."""
        self.path = Path(path)
        self.limits = limits
        self.read_layers = read_layers
        self.hash_layers = hash_layers
        self.outer_compression = "none"
        self.entries: dict[str, Entry] = {}  # every member of the outer tar, by normalised name (last copy)
        self.documents: dict[str, Document] = {}  # the JSON members read (those referenced, and index.json)
        self.layers: dict[str, Layer] = {}
        self.member_bytes = 0  # regular members' bytes (the rest of an uncompressed file is tar structure)
        self.unsafe_names: list[str] = []  # absolute or climbing names of the outer tar
        self.copies: dict[str, int] = {}  # members the tar holds more than once: how many times
        self.referenced: set[str] = set()  # members a manifest, index or link led to
        self.notes: list[str] = []  # what a person should know that is no violation
        self.judge = Judge("")  # the outer tar's own findings
        self._entry_count = 0
        self._where: dict[str, tuple[int, int]] = {}  # seekable plain tar: member -> (data offset, size)
        self._held: dict[str, bytes] = {}  # one pass: JSON members' bytes, until the manifest is read
        self._held_bytes = 0
        self._not_held: set[str] = set()
        self._broken: dict[str, ArchiveError] = {}  # one pass: members that looked like layers but are not
        self._pending: list[tuple[Layer, Future]] = []
        source, self._seekable = self._open()
        try:
            with ThreadPoolExecutor(max_workers=2) as hasher:
                self._hasher = hasher
                self._read(source)
                if not self.entries:
                    raise ArchiveError(f"{self.path} is an empty archive: a tar with no members")
                self.layout = self._detect()
                self.images: list[Image] = self._read_images() if self.layout != ROOTFS else []
                for layer, digest in self._pending:  # hashing ran behind the header walk; collect it
                    layer.digest = layer.diff_id = digest.result()
        except ArchiveError:
            raise
        except RecursionError as exc:
            raise ArchiveError(f"{self.path}: a JSON document nests too deeply") from exc
        except DATA_ERRORS + _zstd_errors() as exc:
            raise ArchiveError(f"{self.path} is not a readable tar archive ({exc}); is the file complete?") from exc
        finally:
            if source is not sys.stdin.buffer:
                source.close()
        if isinstance(self._counted, CountingReader):
            self.size = self._counted.count
        for name, count in self.copies.items():
            if name not in self.referenced:
                self.notes.append(f"{name} is held {count} times; the last copy counts, as tar extraction and "
                                  f"docker load take it")

    def rootfs_entries(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    # -- input ---------------------------------------------------------------------------------------
    def _open(self) -> tuple[IO[bytes], bool]:
        if str(self.path) == STDIN:
            self.size = 0
            return sys.stdin.buffer, False
        try:
            handle = open(self.path, "rb")
            info = os.fstat(handle.fileno())
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if stat.S_ISDIR(info.st_mode):
            handle.close()
            raise ArchiveError(f"{self.path} is a directory, not an archive")
        regular = stat.S_ISREG(info.st_mode)
        self.size = info.st_size if regular else 0
        return handle, regular

    def _read(self, source: IO[bytes]) -> None:
        self._counted: Any = source if self._seekable else CountingReader(source)
        peek = PeekReader(self._counted)
        self.outer_compression = compression_of(peek.head)
        if self.outer_compression == "none" and not _looks_like_tar(peek.head):
            raise ArchiveError(f"{self.path} is not a readable tar archive (no tar header at its start)")
        self._random = self.outer_compression == "none" and self._seekable
        tarinfo = bounded_tarinfo(self.limits)
        if self._random:
            # Headers are read and data skipped by seeking; members are read later, in place, when referenced.
            source.seek(0)
            self._fd = source.fileno()
            tar = tarfile.open(fileobj=source, mode="r:", tarinfo=tarinfo)
        else:
            tar = tarfile.open(fileobj=decompressed(peek, self.outer_compression), mode="r|", tarinfo=tarinfo)
        with tar:
            while (info := tar.next()) is not None:
                self._member(tar, info)
                tar.members.clear()

    def _count(self, what: str) -> None:
        self._entry_count += 1
        if self._entry_count > self.limits.max_entries:
            raise ArchiveError(f"{self.path} holds more than {self.limits.max_entries:,} entries ({what}); "
                               f"refusing a tar bomb")

    def _checked(self, raw_name: str) -> str:
        if len(raw_name) > self.limits.max_path:
            raise ArchiveError(f"{self.path}: a path of {len(raw_name):,} characters (limit {self.limits.max_path:,})")
        if raw_name.count("/") > self.limits.max_depth:
            raise ArchiveError(f"{self.path}: a path nests {raw_name.count('/'):,} directories deep "
                               f"(limit {self.limits.max_depth})")
        return normalise(raw_name)

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        self._count(info.name)
        name = self._checked(info.name)
        if is_suspect(info.name, info.type):
            if info.name.startswith("/") or ".." in info.name.split("/"):
                self.unsafe_names.append(info.name)
            self.judge.member(info.name, name, info.type, info.linkname, info.devmajor, info.devminor)
        if name in self.entries:
            self.copies[name] = self.copies.get(name, 1) + 1
            self._forget(name)
        self.entries[name] = Entry.from_tarinfo(info, name)
        if not info.isreg():
            return
        self.member_bytes += info.size
        if self._random:
            if info.offset_data + info.size > self.size:
                raise ArchiveError(f"{self.path} is truncated: {info.name!r} ends at byte "
                                   f"{info.offset_data + info.size:,} of {self.size:,}")
            self._where[name] = (info.offset_data, info.size)
            return
        handle = PeekReader(tar.extractfile(info))
        if handle.head.lstrip()[:1] in (b"{", b"["):
            if info.size <= self.limits.max_json and self._held_bytes + info.size <= self.limits.max_held:
                self._held[name] = handle.read()
                self._held_bytes += info.size
            else:
                self._not_held.add(name)
        elif self.read_layers and (compression_of(handle.head) != "none" or _looks_like_tar(handle.head)):
            try:  # a layer, if a manifest says so; until then its faults are kept, not raised
                self.layers[name] = self._layer(name, handle, info.size)
            except ArchiveError as exc:
                self._broken[name] = exc

    def _forget(self, name: str) -> None:
        """A later copy replaces what an earlier one left."""
        self._where.pop(name, None)
        self._held_bytes -= len(self._held.pop(name, b""))
        self._not_held.discard(name)
        self._broken.pop(name, None)
        self.layers.pop(name, None)

    # -- members, when referenced --------------------------------------------------------------------
    def _raw(self, key: str, what: str) -> bytes:
        """The bytes of a referenced JSON member (at most max_json)."""
        entry = self.entries[key]
        if entry.type != "file" or entry.size > self.limits.max_json:
            raise ArchiveError(f"{self.path}: {what} is not a JSON document of at most {self.limits.max_json:,} bytes")
        if self._random:
            offset, size = self._where[key]
            return os.pread(self._fd, size, offset)
        if key in self._held:
            return self._held[key]
        if self._seekable:  # a compressed file: read it again for this member
            return self._again(key)
        why = (f"more than {self.limits.max_held // (1 << 20)} MiB of JSON came before it" if key in self._not_held
               else "it came before the manifest and was not a JSON document")
        raise ArchiveError(f"{self.path}: {what} was not kept from the one pass a pipe allows ({why}); "
                           f"save the archive to a file and inspect that")

    def _again(self, key: str) -> bytes:
        data = b""
        with open(self.path, "rb") as raw:
            peek = PeekReader(raw)
            with tarfile.open(fileobj=decompressed(peek, self.outer_compression), mode="r|",
                              tarinfo=bounded_tarinfo(self.limits)) as tar:
                for info in tar:
                    if info.isreg() and normalise(info.name) == key:
                        data = tar.extractfile(info).read()  # the last copy wins
                    tar.members.clear()
        return data

    def document(self, name: str) -> Any:
        key = self._resolve(name)
        doc = self.documents.get(key)
        if doc is None:
            raw = self._raw(key, name)
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ArchiveError(f"{self.path}: {name} is not a JSON document") from exc
            doc = self.documents[key] = Document(data, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))
        return doc.data

    def _resolve(self, name: str, depth: int = 0) -> str:
        """A referenced member's name, refusing references outside the archive, following links inside it."""
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ArchiveError(f"{self.path}: the manifest names {name!r}, which points outside the archive")
        key = normalise(name)
        entry = self.entries.get(key)
        if entry is None:
            raise ArchiveError(f"{self.path}: the manifest names {name}, which the archive does not hold")
        self.referenced.add(key)
        if entry.type in ("symlink", "hardlink"):
            if depth >= 8:
                raise ArchiveError(f"{self.path}: {name} is a chain of links too long to follow")
            target = entry.linkname if entry.type == "hardlink" else posixpath.join(posixpath.dirname(key),
                                                                                      entry.linkname)
            if target.startswith("/") or posixpath.normpath(target).startswith(".."):
                raise ArchiveError(f"{self.path}: {name} links to {entry.linkname}, outside the archive")
            return self._resolve(posixpath.normpath(target), depth + 1)
        return key

    def layer(self, name: str) -> Layer:
        key = self._resolve(name)
        layer = self.layers.get(key)
        if layer is not None:
            return layer
        if key in self._broken:
            raise self._broken[key]
        entry = self.entries[key]
        if entry.type != "file":
            raise ArchiveError(f"{self.path}: the manifest names {name} as a layer, but it is a {entry.type}")
        json_member = ArchiveError(f"{self.path}: the manifest names {name} as a layer, but it is a JSON document")
        if not self._random:  # one pass: every member that looked like a tar was read as a layer then
            if key in self._held or key in self._not_held:
                raise json_member
            raise ArchiveError(f"{self.path}: the manifest names {name} as a layer, but it is not a tar or a "
                               f"compressed tar")
        offset, size = self._where[key]
        head = os.pread(self._fd, 512, offset)
        if head.lstrip()[:1] in (b"{", b"["):
            raise json_member
        if compression_of(head) == "none":
            layer = self._plain_layer(key, offset, size)
        else:
            layer = self._layer(key, PeekReader(Region(self._fd, offset, size)), size)
        self.layers[key] = layer
        return layer

    # -- layers ----------------------------------------------------------------------------------------
    def _plain_layer(self, name: str, offset: int, stored: int) -> Layer:
        """An uncompressed layer in an uncompressed archive: hash its bytes while walking its headers."""
        digest = self._hasher.submit(_hash_region, self.path, offset, stored if self.hash_layers else -1)
        what = f"layer {name} of {self.path}"
        counted = self._entry_count
        handle = Region(self._fd, offset, stored)
        judge = Judge(name)
        try:
            try:
                entries, end = self._ustar_entries(offset, stored, name, what, judge)
            except ustar.Unusual:  # extended headers or odd input: tarfile reads the layer again and judges
                self._entry_count = counted
                judge = Judge(name)
                entries, end = self._tarfile_entries(handle, stored, name, what, judge)
            _check_end(what, stored, end, handle)
        except ArchiveError:
            digest.cancel()
            raise
        except DATA_ERRORS as exc:
            digest.cancel()
            raise ArchiveError(f"{what} is not a readable tar ({exc}); is the file complete?") from exc
        layer = Layer(member=name, size=stored, compression="none", digest="", diff_id="",
                      uncompressed_size=stored, entries=entries, judge=judge)
        self._pending.append((layer, digest))
        return layer

    def _ustar_entries(self, base: int, stored: int, name: str, what: str, judge: Judge) -> tuple[list[Entry], int]:
        entries: list[Entry] = []
        walk = ustar.Headers(self._fd, base, stored)
        for header in walk:
            self._count(f"in {name}")
            _check_inside(what, header.name, header.offset_data, header.size if header.type in ustar.REGULAR else 0,
                          stored)
            path = self._checked(header.name)
            if is_suspect(header.name, header.type):
                judge.member(header.name, path, header.type, header.linkname, header.devmajor, header.devminor)
            entries.append(Entry.from_fields(path, header.type, header.mode, header.uid, header.gid, header.size,
                                             header.linkname))
        return entries, walk.end

    def _tarfile_entries(self, handle: IO[bytes], stored: int, name: str, what: str,
                         judge: Judge) -> tuple[list[Entry], int]:
        entries: list[Entry] = []
        handle.seek(0)
        with tarfile.open(fileobj=handle, mode="r:", tarinfo=bounded_tarinfo(self.limits)) as tar:
            while (member := tar.next()) is not None:
                self._count(f"in {name}")
                _check_inside(what, member.name, member.offset_data, member.size if member.isreg() else 0, stored)
                entries.append(self._entry(member, judge))
                tar.members.clear()
            return entries, tar.offset

    def _entry(self, info: tarfile.TarInfo, judge: Judge) -> Entry:
        path = self._checked(info.name)
        if is_suspect(info.name, info.type):
            judge.member(info.name, path, info.type, info.linkname, info.devmajor, info.devminor)
        return Entry.from_tarinfo(info, path)

    def _layer(self, name: str, handle: PeekReader, stored: int) -> Layer:
        stored_hash = HashingReader(handle)
        peek = PeekReader(stored_hash)
        compression = compression_of(peek.head)
        what = f"layer {name} of {self.path}"
        expanded = None
        source: Any = peek
        if compression != "none":
            limit = max(self.limits.expansion_floor, stored * self.limits.max_expansion)
            expanded = HashingReader(decompressed(peek, compression), limit=limit, what=what)
            source = expanded
        entries: list[Entry] = []
        judge = Judge(name)
        try:
            with tarfile.open(fileobj=source, mode="r|", tarinfo=bounded_tarinfo(self.limits)) as tar:
                while (info := tar.next()) is not None:
                    self._count(f"in {name}")
                    if compression == "none":
                        _check_inside(what, info.name, info.offset_data, info.size if info.isreg() else 0, stored)
                    entries.append(self._entry(info, judge))
                    tar.members.clear()
                parsed_to = tar.offset
            if expanded is not None:
                expanded.drain()
            stored_hash.drain()
            _check_end(what, (expanded or stored_hash).count if expanded else stored, parsed_to, None)
        except ArchiveError:
            raise
        except DATA_ERRORS + _zstd_errors() as exc:
            raise ArchiveError(f"{what} is not a readable tar ({exc}); is the file complete?") from exc
        diff = expanded if expanded is not None else stored_hash
        return Layer(member=name, size=stored, compression=compression, digest=stored_hash.digest,
                     diff_id=diff.digest, uncompressed_size=diff.count, entries=entries, judge=judge)

    # -- interpretation ----------------------------------------------------------------------------
    def _detect(self) -> str:
        names = self.entries
        if "oci-layout" in names and "index.json" in names:
            return OCI
        if "manifest.json" in names:
            return LEGACY
        if "repositories" in names or any(n.endswith("/layer.tar") for n in names):
            raise ArchiveError(f"{self.path} is a pre-1.10 docker save archive (no manifest.json); load it into "
                               f"an engine and save it again")
        if "index.json" in names and any(n.startswith("blobs/") for n in names):
            raise ArchiveError(f"{self.path} looks like an OCI image layout without its oci-layout file")
        return ROOTFS

    def _read_images(self) -> list[Image]:
        from_index: list[Image] = []
        if self.layout == OCI:
            try:
                self.document("oci-layout")
            except ArchiveError:
                pass  # verification names a missing or unreadable oci-layout
            index = _as_dict(self.document("index.json"), "index.json")
            manifests = index.get("manifests")
            if not isinstance(manifests, list) or not manifests:
                raise ArchiveError(f"{self.path}: index.json names no image (\"manifests\": "
                                   f"{json.dumps(manifests)}); the archive is empty")
            with_layers = "manifest.json" not in self.entries  # Docker 25+: manifest.json is what docker load reads
            for descriptor in manifests:
                from_index.extend(self._oci_manifest(descriptor, depth=0, with_layers=with_layers))
            if not from_index:
                raise ArchiveError(f"{self.path}: index.json names no image the archive holds (only attestations "
                                   f"or platforms it does not carry)")
        if "manifest.json" not in self.entries:
            return from_index
        images = self._docker_manifest()
        self._compare_index(images, from_index)
        return images

    def _docker_manifest(self) -> list[Image]:
        manifest = self.document("manifest.json")
        if not isinstance(manifest, list):
            raise ArchiveError(f"{self.path}: manifest.json is not a list of images")
        if not manifest:
            raise ArchiveError(f"{self.path}: manifest.json names no image (an empty list); the archive is empty")
        images = []
        for item in manifest:
            if not isinstance(item, dict) or not isinstance(item.get("Layers") or [], list):
                raise ArchiveError(f"{self.path}: manifest.json has an entry that is not an image")
            config_member = self._resolve(item.get("Config", ""))
            config = _as_dict(self.document(config_member), config_member)
            images.append(Image(config_member=config_member, config=config,
                                repo_tags=[str(t) for t in item.get("RepoTags") or []],
                                layers=[self.layer(name) for name in item.get("Layers") or [] if self.read_layers],
                                config_digest=self.documents[config_member].digest))
        return images

    def _compare_index(self, images: list[Image], from_index: list[Image]) -> None:
        """Docker 25.0 wrote OCI manifests listing only foreign layers: say where the index and manifest.json differ."""
        by_config = {image.config_member: image for image in from_index}
        for image in images:
            twin = by_config.get(image.config_member)
            if twin is None:
                continue
            image.manifest_digest = twin.manifest_digest
            declared = len(self.documents_of(twin.manifest_digest).get("layers") or [])
            listed = len(self._layer_names(image))
            if declared != listed:
                self.notes.append(f"the OCI manifest {twin.manifest_digest} lists {declared} layer(s), manifest.json "
                                  f"{listed} for the same config; manifest.json is read, as docker load reads it "
                                  f"(Docker 25.0 wrote only foreign layers into its OCI manifests)")

    def documents_of(self, digest: str) -> dict:
        doc = self.documents.get(blob_path({"digest": digest}))
        return doc.data if doc and isinstance(doc.data, dict) else {}

    def _layer_names(self, image: Image) -> list[str]:
        manifest = self.documents.get("manifest.json")
        for item in manifest.data if manifest else []:
            if isinstance(item, dict) and normalise(str(item.get("Config", ""))) == image.config_member:
                return list(item.get("Layers") or [])
        return []

    def _oci_manifest(self, descriptor: Any, depth: int, with_layers: bool, parent_tag: str | None = None) -> list[Image]:
        if depth > self.limits.max_index_depth:
            raise ArchiveError(f"{self.path}: OCI indexes nest deeper than {self.limits.max_index_depth}")
        descriptor = _as_dict(descriptor, "an index entry")
        path = blob_path(descriptor)
        annotations = descriptor.get("annotations") or {}
        platform = _platform(descriptor.get("platform"))
        if isinstance(annotations, dict) and annotations.get("vnd.docker.reference.type") == ATTESTATION:
            self.notes.append(f"{path} is an attestation manifest (BuildKit provenance), not an image")
            return []
        if depth > 0 and normalise(path) not in self.entries:
            # a multi-platform index names every platform; a save holds only those that were pulled
            self.notes.append(f"the index names {platform or 'a'} manifest {descriptor.get('digest')}, which the "
                              f"archive does not hold")
            return []
        document = _as_dict(self.document(path), path)
        tag = (annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
               if isinstance(annotations, dict) else None) or parent_tag  # an index's name is its platforms' name
        if "manifests" in document:
            children = document["manifests"]
            if not isinstance(children, list) or not children:
                raise ArchiveError(f"{self.path}: the index {path} names no image; the archive is empty")
            out = []
            for child in children:
                out.extend(self._oci_manifest(child, depth + 1, with_layers, tag))
            return out
        config_member = self._resolve(blob_path(document.get("config")))
        layers = document.get("layers") or []
        if not isinstance(layers, list):
            raise ArchiveError(f"{self.path}: the manifest {path} has a \"layers\" that is not a list")
        return [Image(config_member=config_member, config=_as_dict(self.document(config_member), config_member),
                      repo_tags=[str(tag)] if tag else [],
                      layers=[self.layer(blob_path(d)) for d in layers if self.read_layers and with_layers],
                      media_types=[str(_as_dict(d, "a layer descriptor").get("mediaType", "")) for d in layers],
                      config_digest=self.documents[config_member].digest,
                      manifest_digest=str(descriptor.get("digest")), platform=platform)]


def _platform(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    return "/".join(str(value[k]) for k in ("os", "architecture", "variant") if value.get(k))


def _check_inside(what: str, member: str, offset_data: int, data_size: int, stored: int) -> None:
    end = offset_data + -(-data_size // 512) * 512
    if end > stored:
        raise ArchiveError(f"{what} is truncated: {member!r} ends at byte {end:,} of {stored:,}")


def _check_end(what: str, size: int, offset: int, handle: IO[bytes] | None) -> None:
    """A tar ends with an end-of-archive marker (1,024 zero bytes); without it the layer was cut short."""
    if size - offset < 1024:
        raise ArchiveError(f"{what} is truncated: it ends without the tar end-of-archive marker")
    if handle is not None:
        handle.seek(offset)
        tail = handle.read(1024)
        if tail.strip(b"\0"):
            raise ArchiveError(f"{what} is corrupt: data where its headers should continue, at byte {offset:,}")


def _hash_region(path: Path, offset: int, size: int) -> str:
    if size < 0:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        left = size
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return "sha256:" + digest.hexdigest()


def blob_path(descriptor: Any) -> str:
    digest = str(descriptor.get("digest", "")) if isinstance(descriptor, dict) else ""
    algorithm, _, value = digest.partition(":")
    if not value or not re.fullmatch(r"[a-z0-9]+", algorithm) or not re.fullmatch(r"[0-9a-f]+", value):
        raise ArchiveError(f"an OCI descriptor has an unusable digest {digest!r}")
    return f"blobs/{algorithm}/{value}"


def _as_dict(value: Any, what: str = "a document") -> dict:
    if not isinstance(value, dict):
        raise ArchiveError(f"{what}: expected a JSON object, found {type(value).__name__}")
    return value


def _looks_like_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].replace(b"\x00", b" ").strip() or b"0", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 256 + sum(head[156:512])
    return stored == computed or head == b"\x00" * 512
