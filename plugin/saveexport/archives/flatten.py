"""Flattening an image's layers into the file system a container starts from.

Whiteouts (`.wh.NAME`) delete NAME from lower layers, opaque markers (`.wh..wh..opq`) hide a
directory's lower contents. Every byte a later layer hides is counted per layer as shadowed:
it is in the save archive but in no container made from the image.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from .entries import OPAQUE_MARKER, WHITEOUT_PREFIX, Entry
from .reader import Image


@dataclass
class LayerStats:
    member: str
    size: int  # bytes as stored in the archive
    compression: str
    entries: int = 0
    content_bytes: int = 0  # regular files' bytes in this layer
    added: int = 0
    changed: int = 0
    removed: int = 0  # whiteouts and opaque markers
    shadowed_bytes: int = 0  # this layer's bytes that later layers hide

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Flattened:
    files: dict[str, Entry]
    layers: list[LayerStats]
    origin: dict[str, int] = field(default_factory=dict)  # path -> index of the layer that gave it

    @property
    def shadowed_bytes(self) -> int:
        return sum(layer.shadowed_bytes for layer in self.layers)

    @property
    def content_bytes(self) -> int:
        return sum(e.size for e in self.files.values())


def flatten(image: Image) -> Flattened:
    files: dict[str, Entry] = {}
    origin: dict[str, int] = {}
    stats: list[LayerStats] = []
    # Directory path -> paths ever seen directly under it (also directories that only exist as part of a
    # longer path), so that a whiteout visits its own subtree rather than every file of the image.
    children: dict[str, set[str]] = {}

    def remember(path: str) -> None:
        while path:
            parent = posixpath.dirname(path)
            known = children.setdefault(parent, set())
            if path in known:
                return
            known.add(path)
            path = parent

    def hide(path: str, below: int, subtree_only: bool = False) -> int:
        """Drop `path` (and what is under it) given by layers below `below`; count their bytes."""
        doomed = [] if subtree_only or path == "" or origin.get(path, below) >= below else [path]
        stack = [path]
        while stack:
            for child in children.get(stack.pop(), ()):
                stack.append(child)
                if origin.get(child, below) < below:
                    doomed.append(child)
        for p in doomed:
            stats[origin[p]].shadowed_bytes += files[p].size
            del files[p]
            del origin[p]
        return len(doomed)

    for index, layer in enumerate(image.layers):
        stat = LayerStats(member=layer.member, size=layer.size, compression=layer.compression)
        stats.append(stat)
        for entry in layer.entries:
            stat.entries += 1
            parent, base = posixpath.split(entry.path)
            if base.startswith(WHITEOUT_PREFIX):  # a marker's own bytes (normally none) are never visible
                stat.content_bytes += entry.size
                stat.shadowed_bytes += entry.size
            if base == OPAQUE_MARKER:
                stat.removed += 1
                hide(parent, index, subtree_only=True)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                stat.removed += 1
                hide(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]), index)
                continue
            stat.content_bytes += entry.size
            previous = files.get(entry.path)
            if previous is None:
                stat.added += 1
            else:
                stat.changed += 1
                stats[origin[entry.path]].shadowed_bytes += previous.size
                if previous.type == "dir" and entry.type != "dir":
                    hide(entry.path, index + 1, subtree_only=True)
            if previous is None:
                remember(entry.path)
            files[entry.path] = entry
            origin[entry.path] = index
    return Flattened(files=files, layers=stats, origin=origin)
