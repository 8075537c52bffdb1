"""One file-system entry of a tar, normalised so that layers and export archives compare."""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import asdict, dataclass
from typing import IO, Iterator

from ..errors import ArchiveError

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass(frozen=True)
class Entry:
    path: str  # relative, no leading "./" or "/", no trailing "/"; "" is the root itself
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str = ""

    @classmethod
    def from_tarinfo(cls, info: tarfile.TarInfo) -> Entry:
        return cls(path=normalise(info.name), type=TYPES.get(info.type, "other"), mode=info.mode & 0o7777,
                   uid=info.uid, gid=info.gid, size=info.size if info.isreg() else 0,
                   linkname=normalise(info.linkname) if info.islnk() else info.linkname)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mode"] = oct(self.mode)
        return data


def normalise(name: str) -> str:
    """'./usr/bin/' -> 'usr/bin'; '/etc/hosts' -> 'etc/hosts'; '.' -> ''."""
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def iter_entries(fileobj: IO[bytes], what: str, size: int | None = None) -> Iterator[tuple[Entry, tarfile.TarInfo]]:
    """Stream a (possibly gzip/bzip2/xz compressed) tar once, yielding its entries.

    `size`, the stored size of an uncompressed tar, lets a truncated one be told apart from a
    short one: Python's tarfile reads past the end of data without complaint.
    """
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            while (info := tar.next()) is not None:
                end = info.offset_data + (-(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE if info.isreg() else 0)
                if size is not None and end > size:
                    raise ArchiveError(f"{what} is truncated: {info.name!r} ends at byte {end:,} of {size:,}")
                yield Entry.from_tarinfo(info), info
                tar.members.clear()  # next() keeps every header it read; one pass needs none of them
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{what} is not a readable tar ({exc}); is the file complete?") from exc
