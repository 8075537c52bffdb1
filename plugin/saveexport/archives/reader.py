"""Reading image and container archives in one streaming pass, whatever their layout.

Detected from content, never from the file name: Docker's legacy save layout (also Podman's
docker-archive), the OCI image layout (Docker 25+, containerd's store, Podman's oci-archive),
and flat root file systems (docker export); each optionally inside gzip, xz, bzip2 or zstd.

The archive is read once, front to back: every layer is hashed (stored bytes and, when
compressed, uncompressed bytes) and its headers listed as it streams past. Nothing is held in
memory but headers, the small JSON documents and one compact entry list per layer.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import posixpath
import re
import tarfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import ArchiveError
from . import ustar
from .entries import Entry, normalise
from .source import DEFAULT_LIMITS, HashingReader, Limits, PeekReader, bounded_tarinfo, compression_of, decompressed

LEGACY = "docker-legacy"  # manifest.json + <id>/layer.tar or <digest>.tar (+ repositories, <id>/json, VERSION)
OCI = "oci-image-layout"  # oci-layout + index.json + blobs/<alg>/<hex> (Docker 25+ adds manifest.json)
ROOTFS = "rootfs"  # a flat file system: docker export

LAYER_NAME = re.compile(r"^(?:.+/layer\.tar|[0-9a-f]{64}\.tar|blobs/[a-z0-9]+/[0-9a-f]{32,128})$")
JSON_NAME = re.compile(r"^(?:manifest\.json|index\.json|oci-layout|repositories|[^/]+\.json)$")
DATA_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


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

    @property
    def image_id(self) -> str:
        return "sha256:" + posixpath.basename(self.config_member).removesuffix(".json")


@dataclass(frozen=True)
class Document:
    """A JSON member: parsed, with the digest and size of its raw bytes."""

    data: Any
    digest: str
    size: int


class Archive:
    """An archive read once; afterwards everything is in memory in summary form."""

    def __init__(self, path: str | Path, limits: Limits = DEFAULT_LIMITS, *, read_layers: bool = True,
                 hash_layers: bool = True):
        """`read_layers=False` reads the manifests only (images get no layers); `hash_layers=False` skips
        the digests of uncompressed layers in uncompressed archives (their `digest` is then "")."""
        self.path = Path(path)
        self.limits = limits
        self.read_layers = read_layers
        self.hash_layers = hash_layers
        self.size = self._stat_size()
        self.outer_compression = "none"
        self.entries: dict[str, Entry] = {}  # every member of the outer tar, by normalised name
        self.documents: dict[str, Document] = {}
        self.layers: dict[str, Layer] = {}
        self.member_bytes = 0  # regular members' bytes (the rest of an uncompressed file is tar structure)
        self.unsafe_names: list[str] = []  # absolute or climbing names: harmless here, fatal to naive extractors
        self._entry_count = 0
        self._read()
        self.layout = self._detect()
        self.images: list[Image] = self._read_images() if self.layout != ROOTFS else []

    def rootfs_entries(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def _stat_size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    # -- the one pass -------------------------------------------------------------------------------
    def _read(self) -> None:
        tarinfo = bounded_tarinfo(self.limits)
        try:
            with open(self.path, "rb") as raw:
                peek = PeekReader(raw)
                self.outer_compression = compression_of(peek.head)
                if self.outer_compression == "none" and not _looks_like_tar(peek.head):
                    raise ArchiveError(f"{self.path} is not a readable tar archive (no tar header at its start)")
                if self.outer_compression == "none":
                    # Random access: headers are read and data skipped by seeking; layers are hashed by a
                    # second thread (hashlib releases the GIL) while their headers are parsed.
                    raw.seek(0)
                    self._fd = raw.fileno()  # layers' headers are read in place (ustar.Headers)
                    tar = tarfile.open(fileobj=raw, mode="r:", tarinfo=tarinfo)
                else:
                    tar = tarfile.open(fileobj=decompressed(peek, self.outer_compression), mode="r|",
                                       tarinfo=tarinfo)
                with tar, ThreadPoolExecutor(max_workers=2) as hasher:
                    self._hasher = hasher
                    self._pending: list[tuple[Layer, Future]] = []
                    while (info := tar.next()) is not None:
                        self._member(tar, info)
                        tar.members.clear()
                    for layer, digest in self._pending:  # hashing ran behind the header walk; collect it
                        layer.digest = layer.diff_id = digest.result()
        except ArchiveError:
            raise
        except RecursionError as exc:
            raise ArchiveError(f"{self.path}: a JSON document nests too deeply") from exc
        except DATA_ERRORS + _zstd_errors() as exc:
            raise ArchiveError(f"{self.path} is not a readable tar archive ({exc}); is the file complete?") from exc

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
        if info.name.startswith("/") or ".." in info.name.split("/"):
            self.unsafe_names.append(info.name)
        entry = Entry.from_tarinfo(info)
        self.entries[name] = entry
        if not info.isreg():
            return
        self.member_bytes += info.size
        if JSON_NAME.match(name) and info.size <= self.limits.max_json:
            self._document(name, tar.extractfile(info).read())
        elif LAYER_NAME.match(name) and (self.read_layers or name.startswith("blobs/")):
            handle = PeekReader(tar.extractfile(info))
            if name.startswith("blobs/") and handle.head.lstrip()[:1] == b"{":
                if info.size > self.limits.max_json:
                    raise ArchiveError(f"{self.path}: {name} is a {info.size:,}-byte JSON document; refusing it")
                self._document(name, handle.read())
            elif self.read_layers and self.outer_compression == "none" and compression_of(handle.head) == "none":
                self.layers[name] = self._plain_layer(name, tar.extractfile(info), info)
            elif self.read_layers:
                self.layers[name] = self._layer(name, handle, info.size)

    def _document(self, name: str, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None  # not JSON after all (an odd member name); verification names it if it matters
        self.documents[name] = Document(data, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw))

    def _plain_layer(self, name: str, handle: IO[bytes], info: tarfile.TarInfo) -> Layer:
        """An uncompressed layer in an uncompressed archive: hash its bytes while walking its headers."""
        stored = info.size
        digest = self._hasher.submit(_hash_region, self.path, info.offset_data, stored if self.hash_layers else -1)
        what = f"layer {name} of {self.path}"
        counted = self._entry_count
        try:
            try:
                entries, end = self._ustar_entries(info.offset_data, stored, name, what)
            except ustar.Unusual:  # extended headers or odd input: tarfile reads the layer again and judges
                self._entry_count = counted
                entries, end = self._tarfile_entries(handle, stored, name, what)
            _check_end(what, stored, end, handle)
        except ArchiveError:
            digest.cancel()
            raise
        except DATA_ERRORS as exc:
            digest.cancel()
            raise ArchiveError(f"{what} is not a readable tar ({exc}); is the file complete?") from exc
        layer = Layer(member=name, size=stored, compression="none", digest="", diff_id="",
                      uncompressed_size=stored, entries=entries)
        self._pending.append((layer, digest))
        return layer

    def _ustar_entries(self, base: int, stored: int, name: str, what: str) -> tuple[list[Entry], int]:
        entries: list[Entry] = []
        walk = ustar.Headers(self._fd, base, stored)
        for header in walk:
            self._count(f"in {name}")
            _check_inside(what, header.name, header.offset_data, header.size if header.type in ustar.REGULAR else 0,
                          stored)
            entries.append(Entry.from_fields(self._checked(header.name), header.type, header.mode, header.uid,
                                             header.gid, header.size, header.linkname))
        return entries, walk.end

    def _tarfile_entries(self, handle: IO[bytes], stored: int, name: str, what: str) -> tuple[list[Entry], int]:
        entries: list[Entry] = []
        handle.seek(0)
        with tarfile.open(fileobj=handle, mode="r:", tarinfo=bounded_tarinfo(self.limits)) as tar:
            while (member := tar.next()) is not None:
                self._count(f"in {name}")
                _check_inside(what, member.name, member.offset_data, member.size if member.isreg() else 0, stored)
                entries.append(Entry.from_tarinfo(member, self._checked(member.name)))
                tar.members.clear()
            return entries, tar.offset

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
        try:
            with tarfile.open(fileobj=source, mode="r|", tarinfo=bounded_tarinfo(self.limits)) as tar:
                while (info := tar.next()) is not None:
                    self._count(f"in {name}")
                    if compression == "none":
                        _check_inside(what, info.name, info.offset_data, info.size if info.isreg() else 0, stored)
                    entries.append(Entry.from_tarinfo(info, self._checked(info.name)))
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
                     diff_id=diff.digest, uncompressed_size=diff.count, entries=entries)

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

    def document(self, name: str) -> Any:
        key = self._resolve(name)
        doc = self.documents.get(key)
        if doc is None:
            if key in self.entries:
                raise ArchiveError(f"{self.path}: {name} is not a JSON document of at most "
                                   f"{self.limits.max_json:,} bytes")
            raise ArchiveError(f"{self.path}: the manifest names {name}, which the archive does not hold")
        if doc.data is None:
            raise ArchiveError(f"{self.path}: {name} is not valid JSON")
        return doc.data

    def _resolve(self, name: str, depth: int = 0) -> str:
        """A referenced member's name, refusing references outside the archive, following links inside it."""
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ArchiveError(f"{self.path}: the manifest names {name!r}, which points outside the archive")
        key = normalise(name)
        entry = self.entries.get(key)
        if entry is None:
            raise ArchiveError(f"{self.path}: the manifest names {name}, which the archive does not hold")
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
        if layer is None:
            raise ArchiveError(f"{self.path}: the manifest names {name} as a layer, but it was not read as one "
                               f"(an unexpected member name or a JSON document)")
        return layer

    def _read_images(self) -> list[Image]:
        if "manifest.json" in self.entries:
            manifest = self.document("manifest.json")
            if not isinstance(manifest, list):
                raise ArchiveError(f"{self.path}: manifest.json is not a list of images")
            images = []
            for item in manifest:
                if not isinstance(item, dict) or not isinstance(item.get("Layers", []), list):
                    raise ArchiveError(f"{self.path}: manifest.json has an entry that is not an image")
                config_member = self._resolve(item.get("Config", ""))
                images.append(Image(config_member=config_member, config=_as_dict(self.document(config_member)),
                                    repo_tags=list(item.get("RepoTags") or []),
                                    layers=[self.layer(name) for name in item.get("Layers") or []
                                            if self.read_layers]))
            return images
        index = self.document("index.json")
        images = []
        for descriptor in _as_dict(index).get("manifests") or []:
            images.extend(self._oci_manifest(descriptor, depth=0))
        return images

    def _oci_manifest(self, descriptor: Any, depth: int) -> list[Image]:
        if depth > self.limits.max_index_depth:
            raise ArchiveError(f"{self.path}: OCI indexes nest deeper than {self.limits.max_index_depth}")
        document = _as_dict(self.document(blob_path(descriptor)))
        if "manifests" in document:
            out = []
            for child in document["manifests"] or []:
                out.extend(self._oci_manifest(child, depth + 1))
            return out
        annotations = _as_dict(descriptor).get("annotations") or {}
        tag = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
        config_member = blob_path(document.get("config"))
        layers = document.get("layers") or []
        return [Image(config_member=config_member, config=_as_dict(self.document(config_member)),
                      repo_tags=[tag] if tag else [],
                      layers=[self.layer(blob_path(d)) for d in layers if self.read_layers],
                      media_types=[str(_as_dict(d).get("mediaType", "")) for d in layers])]


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
    digest = str(_as_dict(descriptor).get("digest", ""))
    algorithm, _, value = digest.partition(":")
    if not value or not re.fullmatch(r"[a-z0-9]+", algorithm) or not re.fullmatch(r"[0-9a-f]+", value):
        raise ArchiveError(f"an OCI descriptor has an unusable digest {digest!r}")
    return f"blobs/{algorithm}/{value}"


def _as_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ArchiveError(f"expected a JSON object, found {type(value).__name__}")
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
