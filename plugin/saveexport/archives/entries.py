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
        return cls(path=normalise(info.name) if path is None else path, type=TYPES.get(info.type, "other"), mode=info.mode & 0o7777,
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
