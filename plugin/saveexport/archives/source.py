"""Opening archives safely: outer compression by content, hashing readers, bounded tar headers."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tarfile
from dataclasses import dataclass
from typing import IO

from ..errors import ArchiveError

MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


@dataclass(frozen=True)
class Limits:
    """Bounds that keep memory and time finite on hostile input; each breach is one clear error."""

    max_header: int = 1 << 20  # a pax or GNU long-name header (real ones are bytes to kilobytes)
    max_json: int = 16 << 20  # manifests, indexes and configs are kilobytes
    max_entries: int = 2_000_000  # entries across all layers of one archive
    max_path: int = 4096  # characters in one path
    max_depth: int = 256  # components in one path
    max_expansion: int = 1024  # uncompressed bytes per stored byte, beyond expansion_floor
    expansion_floor: int = 1 << 30
    max_index_depth: int = 4  # OCI indexes pointing to indexes
    max_held: int = 16 << 20  # a pipe's JSON members held until its manifest is read (real ones: kilobytes)


DEFAULT_LIMITS = Limits()


def compression_of(head: bytes) -> str:
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def decompressed(fileobj: IO[bytes], compression: str) -> IO[bytes]:
    """A reading stream of the decompressed bytes (zstd through the zstandard package)."""
    if compression == "none":
        return fileobj
    if compression == "gzip":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(fileobj, mode="rb")
    if compression == "bzip2":
        return bz2.BZ2File(fileobj, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True, closefd=False)
    raise ArchiveError(f"unknown compression {compression}")


class PeekReader:
    """A reader that lets the first bytes be looked at and then read again."""

    def __init__(self, raw: IO[bytes], peek_size: int = 512):
        self._raw = raw
        self._head = raw.read(peek_size)
        self._pos = 0

    @property
    def head(self) -> bytes:
        return self._head

    def read(self, size: int = -1) -> bytes:
        if self._pos < len(self._head):
            if size is None or size < 0:
                data = self._head[self._pos:] + self._raw.read()
                self._pos = len(self._head)
                return data
            data = self._head[self._pos:self._pos + size]
            self._pos += len(data)
            if len(data) < size:
                data += self._raw.read(size - len(data))
            return data
        return self._raw.read(size)

    def readable(self) -> bool:
        return True


class Region:
    """The bytes [offset, offset + size) of an open file, read in place (pread): a seekable file of its own."""

    def __init__(self, fd: int, offset: int, size: int):
        self._fd, self._offset, self._size, self._pos = fd, offset, size, 0

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._pos
        size = left if size is None or size < 0 else min(size, left)
        if size <= 0:
            return b""
        data = os.pread(self._fd, size, self._offset + self._pos)
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else self._pos + pos if whence == 1 else self._size + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class CountingReader:
    """Counts the bytes read through it (the size of an archive read from a pipe)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True


class HashingReader:
    """Counts and hashes (sha256) every byte read through it; `drain()` reads what is left."""

    def __init__(self, raw: IO[bytes], limit: int | None = None, what: str = "data"):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.count = 0
        self._limit = limit
        self._what = what

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self._limit is not None and self.count > self._limit:
            raise ArchiveError(f"{self._what} expands beyond {self._limit:,} bytes; a decompression bomb?")
        self.sha256.update(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def bounded_tarinfo(limits: Limits) -> type[tarfile.TarInfo]:
    """A TarInfo that refuses oversized extended headers before tarfile reads them into memory."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tar):  # noqa: D401 - tarfile's own extension point
            if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > limits.max_header:
                raise ArchiveError(f"a tar header declares {self.size:,} bytes of extended data "
                                   f"(limit {limits.max_header:,}); refusing a header bomb")
            return super()._proc_member(tar)

    return BoundedTarInfo
