"""Extraction, only when asked: an export's root, or an image's layers applied in order, into an empty
directory — never outside it.

Every member goes through tarfile's `data` filter (no absolute paths, nothing that resolves outside
the target, no hard links or relative symlinks pointing out, no device files or FIFOs, no setuid
bits), except that symlinks to absolute paths are kept as the root file system has them; nothing is
ever written through a symlink. What is refused is skipped and listed. Whiteouts and opaque
directories are applied inside the target only.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchiveError
from .entries import OPAQUE_MARKER, WHITEOUT_PREFIX, normalise
from .reader import ROOTFS, Archive
from .source import compression_of, decompressed


@dataclass
class Extracted:
    target: str
    written: int = 0
    removed_by_whiteouts: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (member, why)

    def to_dict(self) -> dict:
        return {"target": self.target, "written": self.written, "removed_by_whiteouts": self.removed_by_whiteouts,
                "refused": [{"member": m, "why": w} for m, w in self.refused]}


def extract(archive: Archive, target: Path, image_index: int = 0) -> Extracted:
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise ArchiveError(f"{target} is not empty; extract into a new or empty directory")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    report = Extracted(str(root))
    if archive.layout == ROOTFS:
        with open(archive.path, "rb") as raw:
            compression = compression_of(raw.read(6))
            raw.seek(0)
            stream = decompressed(raw, compression)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                _apply(tar, root, report, layer_paths=None)
        return report
    if archive.outer_compression != "none":
        raise ArchiveError(f"{archive.path} is {archive.outer_compression}-compressed; decompress it first to "
                           f"extract an image from it")
    if not 0 <= image_index < len(archive.images):
        raise ArchiveError(f"{archive.path} holds {len(archive.images)} image(s); there is no image {image_index + 1}")
    with tarfile.open(archive.path, mode="r:") as outer:
        for layer in archive.images[image_index].layers:
            handle = outer.extractfile(outer.getmember(_member_name(outer, layer.member)))
            with tarfile.open(fileobj=decompressed(handle, layer.compression), mode="r|") as tar:
                _apply(tar, root, report, layer_paths=set())
    return report


def _member_name(outer: tarfile.TarFile, normalised: str) -> str:
    for name in (normalised, "./" + normalised, "/" + normalised):
        try:
            outer.getmember(name)
            return name
        except KeyError:
            continue
    raise ArchiveError(f"{normalised} vanished from the archive between reading and extracting")


def _rootfs_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """tarfile's `data` filter, except that a symlink may point to an absolute path.

    In a root file system `/usr/bin/awk -> /etc/alternatives/awk` is normal: it means the same root.
    Such links are created as they are and never followed while extracting (see `_inside`).
    """
    if member.issym() and member.linkname.startswith("/"):
        return tarfile.tar_filter(member, dest_path)
    return tarfile.data_filter(member, dest_path)


def _inside(root: Path, relative: str) -> Path | None:
    """The path for `relative` under root, or None if it (or a parent that is a symlink) leads outside."""
    candidate = root / relative
    parent = candidate.parent.resolve()
    if parent != root and root not in parent.parents:
        return None
    return parent / candidate.name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _apply(tar: tarfile.TarFile, root: Path, report: Extracted, layer_paths: set[str] | None) -> None:
    """Extract one tar (an export, or one layer: then whiteouts apply to what lower layers wrote)."""
    for member in tar:  # members are kept: tarfile resolves hard links through them (bounded by the read)
        name = normalise(member.name)
        if not name:
            continue
        parent, base = posixpath.split(name)
        if layer_paths is not None and base == OPAQUE_MARKER:
            directory = _inside(root, parent) if parent else root
            if directory is not None and directory.is_dir() and not directory.is_symlink():
                for child in directory.iterdir():
                    rel = str(child.relative_to(root))
                    if rel not in layer_paths:
                        _remove(child)
                        report.removed_by_whiteouts += 1
            continue
        if layer_paths is not None and base.startswith(WHITEOUT_PREFIX):
            doomed = _inside(root, posixpath.join(parent, base[len(WHITEOUT_PREFIX):]))
            if doomed is not None and (doomed.exists() or doomed.is_symlink()):
                _remove(doomed)
                report.removed_by_whiteouts += 1
            continue
        destination = _inside(root, name)
        if destination is None:
            report.refused.append((member.name, "its parent directory leads outside the target"))
            continue
        if destination.is_symlink() or (destination.exists() and not (destination.is_dir() and member.isdir())):
            _remove(destination)  # a later layer replaces what a lower one wrote; never write through a link
        try:
            tar.extract(member, root, filter=_rootfs_filter)
        except (tarfile.FilterError, OSError) as exc:
            report.refused.append((member.name, str(exc)))
            continue
        report.written += 1
        if layer_paths is not None:
            layer_paths.add(name)
