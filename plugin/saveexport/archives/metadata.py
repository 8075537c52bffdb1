"""`inspect --metadata` on a plain tar in a file, fast: headers walked in place, manifest.json or
index.json and the configs read by offset, every layer's data seeked past, nothing verified.

skopeo answers `inspect docker-archive:` in about 20 ms; Python alone takes 15 ms to start. So this
path imports only what it needs (no tarfile, threads or dataclasses) and answers the common case
only: a plain ustar outer tar whose manifests, indexes and configs are regular members, each held
once. Anything else (compression, a pipe, extended headers, links, duplicates, a missing member,
a multi-platform index, bad JSON) returns None, and the full reader (`Archive(read_layers=False)`)
answers, with its one-line errors. Both give the same summary (tests/test_writers.py checks it).
"""

from __future__ import annotations  # annotations are never evaluated: typing is not imported (Any, Iterator)

import json
import os
import posixpath

from . import ustar

try:  # the builtin sha256: hashlib loads OpenSSL first, 2 ms of a 25 ms answer
    from _sha256 import sha256
except ImportError:  # Python 3.12+ calls it _sha2
    try:
        from _sha2 import sha256
    except ImportError:  # pragma: no cover
        from hashlib import sha256

KIND_EXPORT = "export (flat root file system)"
KIND_IMAGE = "image archive (docker save / podman save)"
RUN_CONFIG = ("Cmd", "Entrypoint", "Env", "Volumes", "ExposedPorts", "User", "WorkingDir")
MAX_JSON = 16 << 20


def image_metadata(image_id: str, tags: list[str], config_member: str, manifest_digest: str, platform: str,
                   config: dict) -> dict[str, Any]:
    """One image of an `inspect --metadata` summary."""
    run = config.get("config") or {}
    return {"id": image_id, "tags": tags, "config_member": config_member, "manifest_digest": manifest_digest,
            "platform": platform, "config": {key: run.get(key) for key in RUN_CONFIG if run.get(key)},
            "diff_ids": list((config.get("rootfs") or {}).get("diff_ids") or []),
            "layers": [], "layer_bytes": 0, "visible_bytes": 0, "shadowed_bytes": 0, "files": 0}


class _Fallback(Exception):
    """Leave this archive to the full reader."""


def summary(path: str) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _summary(path, fd)
    except (_Fallback, ustar.Unusual, OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError):
        return None
    finally:
        os.close(fd)


def _summary(path: str, fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    members: dict[str, tuple[bytes, int, int]] = {}  # name -> (type, data offset, size)
    for header in ustar.Headers(fd, 0, size):
        if header.name[:1] == "/" or ".." in header.name.split("/"):
            raise _Fallback("unsafe names")
        name = posixpath.normpath("/" + header.name).lstrip("/")
        name = "" if name == "." else name
        if name in members or header.offset_data + (header.size if header.type in ustar.REGULAR else 0) > size:
            raise _Fallback("held twice, or truncated")
        members[name] = (header.type, header.offset_data, header.size)
    if not members:
        raise _Fallback("empty")

    def document(name: str) -> tuple[Any, str]:
        kind, offset, length = members[posixpath.normpath("/" + name).lstrip("/")]
        if kind not in ustar.REGULAR or length > MAX_JSON:
            raise _Fallback("not a regular JSON member")
        raw = os.pread(fd, length, offset)
        return json.loads(raw), "sha256:" + sha256(raw).hexdigest()

    images: list[dict[str, Any]] = []
    if "oci-layout" in members and "index.json" in members:
        layout = "oci-image-layout"
        index = document("index.json")[0]
        for descriptor in index["manifests"]:
            digest = descriptor["digest"]
            manifest = document("blobs/" + digest.replace(":", "/", 1))[0]
            if "manifests" in manifest or not (descriptor.get("annotations") or {}).keys() <= {
                    "io.containerd.image.name", "org.opencontainers.image.ref.name"}:
                raise _Fallback("an index of indexes, or annotations the full reader judges")
            annotations = descriptor.get("annotations") or {}
            tag = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
            config_member = "blobs/" + manifest["config"]["digest"].replace(":", "/", 1)
            config, config_digest = document(config_member)
            platform = descriptor.get("platform") or {}
            images.append(image_metadata(config_digest, [str(tag)] if tag else [], config_member, str(digest),
                                         "/".join(str(platform[k]) for k in ("os", "architecture", "variant")
                                                  if platform.get(k)), config))
        if "manifest.json" in members:
            raise _Fallback("both: the full reader compares them")
    elif "manifest.json" in members:
        layout = "docker-legacy"
        for item in document("manifest.json")[0]:
            config_member = posixpath.normpath("/" + item["Config"]).lstrip("/")
            config, config_digest = document(config_member)
            images.append(image_metadata(config_digest, [str(t) for t in item.get("RepoTags") or []], config_member,
                                         "", "", config))
    else:
        raise _Fallback("not an image archive")
    if not images or not all(isinstance(image["config"], dict) for image in images):
        raise _Fallback("nothing named")
    return {"path": path, "bytes": size, "outer_compression": "none", "layout": layout, "kind": KIND_IMAGE,
            "entries": len(members), "unsafe_names": [], "images": images, "violations": [], "verified": False,
            "notes": []}
