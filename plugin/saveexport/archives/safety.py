"""Safety verdicts: members that would put something outside the root an extractor unpacks them into.

Each finding names a code, the layer (the archive member that holds it; "" for the archive itself or an
export) and the member, and says why it matters. The reader calls `Judge.member` while it walks a tar,
for what only the raw header shows (names and link targets before normalising, device numbers); the
checks that need a layer's order or the layers below it run afterwards on the entries
(`layer_findings`, `through_symlinks`).

Device nodes: a container root normally holds the devices every runtime creates, with their usual
numbers (`STANDARD_DEVICES`: /dev/null 1:3 … /dev/ptmx 5:2). debootstrap and mmdebstrap roots carry
them, so images made from such roots (this project's stand-in subject among them) and exports of their
containers do; they are noted, never flagged. Any other device node or FIFO is a finding: extracted as
root, `dev/sda` 8:0 is the host's disk.
"""

from __future__ import annotations

import posixpath
import tarfile
from typing import Iterable

from .entries import OPAQUE_MARKER, WHITEOUT_PREFIX, Entry

STANDARD_DEVICES = {"dev/null": (1, 3), "dev/zero": (1, 5), "dev/full": (1, 7), "dev/random": (1, 8),
                    "dev/urandom": (1, 9), "dev/tty": (5, 0), "dev/console": (5, 1), "dev/ptmx": (5, 2)}
SPECIAL = frozenset((tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE))
KIND_WORD = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}

# code -> why it matters (the sentence after the finding)
WHY = {
    "unsafe-name": "an extractor that trusts member names writes outside its target",
    "hardlink-outside-layer": "a hard link may only name a file the same tar wrote before it; otherwise an "
                              "extractor links whatever the name reaches, possibly a host file",
    "written-through-symlink": "an extractor that follows the link writes where the link points, possibly "
                               "outside the root",
    "symlink-climbs-out": "the link leads above the root it belongs to; an extractor that follows it later "
                          "reaches host files",
    "device-node": "extracted as root a device node works (a disk, memory, a terminal) and a FIFO blocks whoever "
                   "opens it",
}


def is_suspect(raw_name: str, kind: bytes) -> bool:
    """The cheap test the reader makes on every member; only suspects go to Judge.member."""
    return kind in SPECIAL or raw_name[:1] == "/" or ".." in raw_name


def climbs(path: str, target: str) -> bool:
    """Does a relative symlink at `path` with `target` lead above the root (read as the kernel would)?"""
    depth = path.count("/")  # directories the link's parent is below the root
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part and part != ".":
            depth += 1
    return False


class Judge:
    """The findings of one tar (a layer, an export, or the outer archive), as the reader walks it."""

    def __init__(self, layer: str):
        self.layer = layer
        self.findings: list[tuple[str, str, str]] = []  # (code, member, detail)
        self.standard_devices: list[str] = []
        self.flagged: set[str] = set()  # members already judged here (not judged again afterwards)

    def member(self, raw_name: str, path: str, kind: bytes, linkname: str, major: int, minor: int) -> None:
        if raw_name[:1] == "/" or ".." in raw_name.split("/"):
            self._add("unsafe-name", path, f"the member is named {raw_name!r}")
        if kind == tarfile.LNKTYPE and (linkname[:1] == "/" or ".." in linkname.split("/")):
            self._add("hardlink-outside-layer", path, f"a hard link to {linkname!r}")
        if kind in KIND_WORD:
            if kind == tarfile.CHRTYPE and STANDARD_DEVICES.get(path) == (major, minor):
                self.standard_devices.append(f"{path} ({major}:{minor})")
            else:
                numbers = f" {major}:{minor}" if kind != tarfile.FIFOTYPE else ""
                self._add("device-node", path, f"a {KIND_WORD[kind]}{numbers}")

    def _add(self, code: str, member: str, detail: str) -> None:
        self.findings.append((code, member, detail))
        self.flagged.add(member)


def layer_findings(entries: Iterable[Entry], flagged: set[str]) -> list[tuple[str, str, str]]:
    """What a layer's order shows: hard links to nothing written before them, symlinks that climb out."""
    out = []
    seen: set[str] = set()
    for entry in entries:
        if entry.type == "hardlink" and entry.linkname not in seen and entry.path not in flagged:
            out.append(("hardlink-outside-layer", entry.path,
                        f"a hard link to {entry.linkname!r}, which no earlier member of this tar is"))
        elif entry.type == "symlink" and entry.linkname[:1] != "/" and climbs(entry.path, entry.linkname):
            out.append(("symlink-climbs-out", entry.path, f"a symlink to {entry.linkname!r}"))
        seen.add(entry.path)
    return out


def through_symlinks(layers: list[tuple[str, list[Entry]]]) -> list[tuple[str, str, str]]:
    """Members whose parent is a symlink written earlier in the same layer or in a lower one, applying
    whiteouts and opaque directories as an engine does. Returns (layer, member, detail)."""
    links: dict[str, int] = {}  # path -> index of the layer whose symlink stands there
    out = []
    for index, (layer, entries) in enumerate(layers):
        for entry in entries:
            path = entry.path
            if links:
                parent = path
                while (cut := parent.rfind("/")) > 0:
                    parent = parent[:cut]
                    if parent in links:
                        where = "this layer" if links[parent] == index else f"layer {links[parent] + 1} ({layers[links[parent]][0]})"
                        out.append((layer, path, f"its parent {parent!r} is a symlink written by {where}"))
                        break
            directory, base = posixpath.split(path)
            if base.startswith(WHITEOUT_PREFIX):
                gone = directory if base == OPAQUE_MARKER else posixpath.join(directory, base[len(WHITEOUT_PREFIX):])
                prefix = gone + "/" if gone else ""
                for link in [p for p, i in links.items() if p.startswith(prefix) or (p == gone and base != OPAQUE_MARKER)]:
                    if links[link] < index:
                        del links[link]
                continue
            if entry.type == "symlink":
                links[path] = index
            elif path in links:
                del links[path]
    return out
