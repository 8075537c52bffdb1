"""A lean walk over the plain ustar headers of a layer stored uncompressed, read in place.

tarfile builds a TarInfo per member in pure Python; on a real image (~12,000 members) that is most of
inspect's time. Layers written by engines are nearly always plain ustar: this walk reads those
headers straight from the file and yields exactly the fields tarfile would give. Anything it does not
vouch for (pax or GNU extended headers, base-256 numbers, a bad checksum, a short read, an unknown
type) raises Unusual, and the caller reads that layer again with tarfile, which judges odd input.
"""

from __future__ import annotations  # annotations are never evaluated: typing is not imported (Any, Iterator)

import os
import struct
from collections import namedtuple
from zlib import adler32

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
REGULAR = (b"0", b"7", b"\0")  # REGTYPE, CONTTYPE, AREGTYPE: the types whose data follows the header
PLAIN = frozenset((b"1", b"2", b"3", b"4", b"5", b"6") + REGULAR)  # no extended headers, no sparse maps
OCTAL = b"01234567 \0"
NUMBERS = struct.Struct("100x8s8s8s12s12s8s173x8s8s")  # mode uid gid size mtime chksum devmajor devminor


class Unusual(Exception):
    """A header this walk leaves to tarfile."""


# One member's header, as tarfile would read it: name, type (tarfile's type byte, e.g. b"0"), mode, uid,
# gid, size, linkname, offset_data (where its data starts, relative to the layer), devmajor, devminor.
# (collections.namedtuple, not typing.NamedTuple: `inspect --metadata` does not import typing.)
Header = namedtuple("Header", "name type mode uid gid size linkname offset_data devmajor devminor")


class Headers:
    """Every member of the tar stored at [base, base+size) of `fd`, up to its first zero block.

    Iterate once; afterwards `end` is the offset of that zero block (where tarfile's `offset` stands).
    """

    def __init__(self, fd: int, base: int, size: int):
        self._fd = fd
        self._base = base
        self._size = size
        self.end: int | None = None

    def __iter__(self) -> Iterator[Header]:
        pos = 0
        pread, fd, base, last = os.pread, self._fd, self._base, self._size - BLOCK
        while True:
            block = pread(fd, BLOCK, base + pos) if pos <= last else b""
            if len(block) != BLOCK:
                raise Unusual("short header")  # past the layer's end: tarfile decides what that means
            if block == ZERO_BLOCK:
                self.end = pos
                return
            kind = block[156:157]
            if kind not in PLAIN:
                raise Unusual("extended or unknown type")
            if block[100:156].translate(None, OCTAL) or block[329:345].translate(None, OCTAL):
                raise Unusual("a number field that is not plain octal")  # signs, tabs, base-256: tarfile's call
            fields = NUMBERS.unpack_from(block)
            try:  # tarfile's reading: up to the first NUL, blanks around, empty is 0
                mode, uid, gid, size, _mtime, chksum, major, minor = [
                    int(field.partition(b"\0")[0] or b"0", 8) for field in fields]
            except ValueError:  # a field of blanks only (0 to tarfile), or blanks inside a number
                mode, uid, gid, size, _mtime, chksum, major, minor = map(_number, fields)
            if _byte_sum(block) - sum(block[148:156]) + 256 != chksum:
                raise Unusual("checksum")  # tarfile also accepts signed sums, and judges bad ones
            name = _text(block[0:100])
            prefix = _text(block[345:500])
            if kind == b"\0" and name.endswith("/"):
                kind = b"5"  # old V7 tars write a directory as a file whose name ends with "/"
            if kind == b"5":
                name = name.rstrip("/")
            if prefix:
                name = prefix + "/" + name
            data = pos + BLOCK
            pos = data + (-(-size // BLOCK) * BLOCK if kind in REGULAR else 0)
            yield Header(name, kind, mode, uid, gid, size, _text(block[157:257]), data, major, minor)


def _byte_sum(block: bytes) -> int:
    """sum(block), in C: Adler-32's low half is 1 + the byte sum mod 65521, exact for 256 bytes."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _text(field: bytes) -> str:
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    text = field.partition(b"\0")[0]
    if not text.strip():
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise Unusual("spaces inside a number") from None
