"""One file-system entry of a tar, normalised so that layers and export archives compare."""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import asdict, dataclass

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}

REGULAR_TYPES = tarfile.REGULAR_TYPES  # TarInfo.isreg()
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str  # relative, no leading "./" or "/", no trailing "/"; "" is the root itself
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str = ""

    @classmethod
    def from_tarinfo(cls, info: tarfile.TarInfo, path: str | None = None) -> Entry:
        return cls.from_fields(normalise(info.name) if path is None else path, info.type, info.mode, info.uid,
                               info.gid, info.size, info.linkname)

    @classmethod
    def from_fields(cls, path: str, kind: bytes, mode: int, uid: int, gid: int, size: int, linkname: str) -> Entry:
        """From a tar header's fields (`kind` is tarfile's type byte), whoever parsed them."""
        return cls(path=path, type=TYPES.get(kind, "other"), mode=mode & 0o7777, uid=uid, gid=gid,
                   size=size if kind in REGULAR_TYPES else 0,
                   linkname=normalise(linkname) if kind == tarfile.LNKTYPE else linkname)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mode"] = oct(self.mode)
        return data


def normalise(name: str) -> str:
    """'./usr/bin/' -> 'usr/bin'; '/etc/hosts' -> 'etc/hosts'; '.' -> ''."""
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path
