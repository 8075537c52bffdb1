"""Small archives made by the tests: layers, save archives in both layouts, flat roots."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Iterable, Union

# An item: ("path", b"content") for a file, ("path/",) for a directory, ("path", "->", "target") for a
# symlink, ("path", "=>", "target") for a hard link, ("path", "char") for a character device.
Item = Union[tuple]


def layer_bytes(items: Iterable[Item], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in items:
            name = item[0]
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 0
            data = None
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif len(item) == 3 and item[1] == "->":
                info.type, info.linkname = tarfile.SYMTYPE, item[2]
            elif len(item) == 3 and item[1] == "=>":
                info.type, info.linkname = tarfile.LNKTYPE, item[2]
            elif len(item) == 2 and item[1] == "char":
                info.type, info.mode = tarfile.CHRTYPE, 0o666
            else:
                data = item[1]
                info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, symlink: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    if symlink is not None:
        info.type, info.linkname = tarfile.SYMTYPE, symlink
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def uncompressed(layer: bytes) -> bytes:
    if layer[:2] == b"\x1f\x8b":
        return gzip.decompress(layer)
    if layer[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(layer)
    return layer


def config_for(layers: list[bytes], cmd=("sh",), volumes=None) -> dict:
    diff_ids = ["sha256:" + hashlib.sha256(uncompressed(b)).hexdigest() for b in layers]
    config = {"Cmd": list(cmd)}
    if volumes:
        config["Volumes"] = {v: {} for v in volumes}
    return {"architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}


def legacy_save(path: Path, layers: list[bytes], tags=("example:1",), duplicate_as_symlink: bool = False,
                volumes=None, podman: bool = False) -> Path:
    """The layout Docker <25 writes: manifest.json, repositories, <id>/layer.tar, <config>.json.

    podman=True: Podman's docker-archive, which stores layers as <digest>.tar at the top level."""
    config = json.dumps(config_for(layers, volumes=volumes)).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as tar:
        names, first = [], None
        for index, layer in enumerate(layers):
            folder = hashlib.sha256(b"%d" % index + layer).hexdigest()
            if podman:
                _add(tar, folder + ".tar", layer)
                names.append(folder + ".tar")
                continue
            _add(tar, folder + "/")
            _add(tar, folder + "/VERSION", b"1.0")
            _add(tar, folder + "/json", b"{}")
            if duplicate_as_symlink and first is not None and layer == layers[0]:
                _add(tar, folder + "/layer.tar", symlink=f"../{first}/layer.tar")
            else:
                _add(tar, folder + "/layer.tar", layer)
            first = first or folder
            names.append(folder + "/layer.tar")
        _add(tar, config_name, config)
        _add(tar, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": list(tags), "Layers": names}]).encode())
        _add(tar, "repositories", json.dumps({t.split(":")[0]: {t.split(":")[1]: "x"} for t in tags}).encode())
    return path


def oci_save(path: Path, layers: list[bytes], tag: str = "example:1", docker_manifest: bool = True) -> Path:
    """The layout Docker 25+ writes: oci-layout, index.json, blobs/sha256/ (and manifest.json)."""

    def blob(data: bytes) -> tuple[str, bytes]:
        return hashlib.sha256(data).hexdigest(), data

    with tarfile.open(path, "w") as tar:
        _add(tar, "blobs/")
        _add(tar, "blobs/sha256/")
        layer_descriptors = []
        for layer in layers:
            digest, data = blob(layer)
            _add(tar, f"blobs/sha256/{digest}", data)
            media = "application/vnd.oci.image.layer.v1.tar" + (
                "+gzip" if layer[:2] == b"\x1f\x8b" else "+zstd" if layer[:4] == b"\x28\xb5\x2f\xfd" else "")
            layer_descriptors.append({"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)})
        config_digest, config = blob(json.dumps(config_for(layers)).encode())
        _add(tar, f"blobs/sha256/{config_digest}", config)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": f"sha256:{config_digest}", "size": len(config)},
                    "layers": layer_descriptors}
        manifest_digest, manifest_bytes = blob(json.dumps(manifest).encode())
        _add(tar, f"blobs/sha256/{manifest_digest}", manifest_bytes)
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{manifest_digest}",
            "size": len(manifest_bytes), "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}",
                                                         "org.opencontainers.image.ref.name": tag.split(":")[1]}}]}
        _add(tar, "index.json", json.dumps(index).encode())
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        if docker_manifest:
            _add(tar, "manifest.json", json.dumps([{
                "Config": f"blobs/sha256/{config_digest}", "RepoTags": [tag],
                "Layers": [d["digest"].replace("sha256:", "blobs/sha256/") for d in layer_descriptors]}]).encode())
    return path


def rootfs(path: Path, items: Iterable[Item]) -> Path:
    path.write_bytes(layer_bytes(items))
    return path
