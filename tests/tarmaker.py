"""Small archives made by the tests: layers, save archives in both layouts, flat roots."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
from pathlib import Path
from typing import Iterable, Union

from saveexport.archives import Archive

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
            if podman:  # containers/image names a layer by its digest (physicalLayerPath)
                _add(tar, hashlib.sha256(layer).hexdigest() + ".tar", layer)
                names.append(hashlib.sha256(layer).hexdigest() + ".tar")
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


# -- the layouts other writers produce, built from each writer's source (see each docstring) ----------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o644,
            symlink: str | None = None, directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if symlink is not None:
        info.type, info.linkname = tarfile.SYMTYPE, symlink
    elif directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size = len(data or b"")
    tar.addfile(info, io.BytesIO(data or b"") if info.isreg() else None)


def gcr_tarball(path: Path, images: list[tuple[list[str], list[bytes]]]) -> Path:
    """go-containerregistry's pkg/v1/tarball (crane pull, ko, kaniko --tar-path, rules_oci): per image its
    config as `sha256:<hex>` (no .json), then its layers as `<hex>.tar.gz` named by the compressed digest,
    each stored once however many images list it; `manifest.json` LAST, its entries sorted by their
    RepoTags joined; mode 0644, no directories, no repositories file (write.go, writeImagesToTar)."""
    manifest, seen = [], set()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for tags, layers in images:
            layers = [layer if layer[:2] == b"\x1f\x8b" else gzip.compress(layer, mtime=0) for layer in layers]
            config = json.dumps(config_for(layers), separators=(",", ":")).encode()
            _member(tar, "sha256:" + _sha(config), config)
            files = []
            for layer in layers:
                files.append(_sha(layer) + ".tar.gz")
                if files[-1] not in seen:
                    seen.add(files[-1])
                    _member(tar, files[-1], layer)
            manifest.append({"Config": "sha256:" + _sha(config), "RepoTags": list(tags), "Layers": files})
        manifest.sort(key=lambda item: ",".join(item["RepoTags"]))
        _member(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    return path


def containers_image_docker_archive(path: Path, images: list[tuple[list[str], list[bytes]]]) -> Path:
    """containers/image's docker-archive (podman save, skopeo copy … docker-archive:, buildah push):
    layers decompressed and stored at the top level as `<hex>.tar` as they arrive, then the config as
    `<hex>.json`, then per layer a legacy `<id>/` with `layer.tar` a symlink to `../<hex>.tar`, `VERSION`
    and `json`; `manifest.json` and `repositories` at Close (docker/internal/tarfile/writer.go); files 0444,
    no directories."""
    manifest, repositories, sent = [], {}, set()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for tags, layers in images:
            layers = [uncompressed(layer) for layer in layers]
            for layer in layers:
                if _sha(layer) not in sent:
                    sent.add(_sha(layer))
                    _member(tar, _sha(layer) + ".tar", layer, mode=0o444)
            config = json.dumps(config_for(layers)).encode()
            _member(tar, _sha(config) + ".json", config, mode=0o444)
            parent, chain = "", ""
            for layer in layers:
                chain = "sha256:" + _sha(layer) if not chain else "sha256:" + _sha(f"{chain} sha256:{_sha(layer)}".encode())
                layer_id = _sha((parent + chain).encode())
                if layer_id not in sent:
                    sent.add(layer_id)
                    _member(tar, f"{layer_id}/layer.tar", symlink=f"../{_sha(layer)}.tar", mode=0o777)
                    _member(tar, f"{layer_id}/VERSION", b"1.0", mode=0o444)
                    _member(tar, f"{layer_id}/json", json.dumps({"id": layer_id, **({"parent": parent} if parent else {})}).encode(), mode=0o444)
                parent = layer_id
            for tag in tags:
                name, _, version = tag.rpartition(":")
                repositories.setdefault(name, {})[version] = parent
            manifest.append({"Config": _sha(config) + ".json", "RepoTags": list(tags),
                             "Layers": [_sha(layer) + ".tar" for layer in layers]})
        _member(tar, "manifest.json", json.dumps(manifest).encode(), mode=0o444)
        _member(tar, "repositories", json.dumps(repositories).encode(), mode=0o444)
    return path


def _compressed(layer: bytes, compression: str | None) -> tuple[bytes, str]:
    raw = uncompressed(layer)
    if compression == "gzip":
        return gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw), "application/vnd.oci.image.layer.v1.tar+zstd"
    return raw, "application/vnd.oci.image.layer.v1.tar"


def oci_archive(path: Path, layers: list[bytes], *, tag: str | None = "example:1", compression: str | None = "gzip",
                platforms: tuple[str, ...] = (), missing_platforms: tuple[str, ...] = (),
                attestation: bool = False, docker_manifest: bool = False, image_name: str | None = None,
                empty_oci_layers: bool = False) -> Path:
    """An OCI image layout in a tar.

    - containers/image's oci-archive (podman save --format oci-archive, skopeo copy … oci-archive:,
      buildah push … oci-archive:): the layout written to a directory and tarred in walk order (`blobs/`,
      `blobs/sha256/<hex>` sorted, `index.json`, `oci-layout`), layers gzip- (or with
      --dest-compress-format zstd-) compressed, the tag in `org.opencontainers.image.ref.name`.
    - `platforms`: containerd's store (Docker 25+ with the containerd image store): index.json names the
      image's own index (`io.containerd.image.name`), which names one manifest per platform; a save holds
      only the platforms that were pulled (`missing_platforms` are named but absent) and BuildKit's
      attestation manifests; `docker_manifest` adds Docker's manifest.json for what is held.
    - `empty_oci_layers`: Docker 25.0 (moby image/tarexport/save.go) wrote OCI manifests whose layers
      list held only foreign layers, so it is empty; its manifest.json lists them.
    """
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict:
        blobs[_sha(data)] = data
        return {"digest": "sha256:" + _sha(data), "size": len(data)}

    stored = [_compressed(layer, compression) for layer in layers]
    config = json.dumps(config_for([s for s, _ in stored])).encode()
    layer_descriptors = [dict(put(data), mediaType=media) for data, media in stored]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(put(config), mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": [] if empty_oci_layers else layer_descriptors}
    manifest_descriptor = dict(put(json.dumps(manifest).encode()), mediaType=manifest["mediaType"])
    annotations = {}
    if tag:
        annotations["org.opencontainers.image.ref.name"] = tag.rsplit(":", 1)[-1] if image_name else tag
    if image_name:
        annotations["io.containerd.image.name"] = image_name
    if platforms:
        os_, arch = platforms[0].split("/")
        children = [dict(manifest_descriptor, platform={"os": os_, "architecture": arch})]
        for other in missing_platforms:
            fake = json.dumps({"schemaVersion": 2, "platform": other}).encode()  # named, never stored
            children.append({"mediaType": manifest["mediaType"], "digest": "sha256:" + _sha(fake), "size": len(fake),
                             "platform": dict(zip(("os", "architecture"), other.split("/")))})
        if attestation:
            statement = put(b'{"_type": "https://in-toto.io/Statement/v0.1"}')
            att_config = put(b'{"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers", "diff_ids": []}}')
            att = {"schemaVersion": 2, "mediaType": manifest["mediaType"],
                   "config": dict(att_config, mediaType="application/vnd.oci.image.config.v1+json"),
                   "layers": [dict(statement, mediaType="application/vnd.in-toto+json")]}
            children.append(dict(put(json.dumps(att).encode()), mediaType=manifest["mediaType"],
                                 platform={"os": "unknown", "architecture": "unknown"},
                                 annotations={"vnd.docker.reference.type": "attestation-manifest",
                                              "vnd.docker.reference.digest": manifest_descriptor["digest"]}))
        image_index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}
        top = dict(put(json.dumps(image_index).encode()), mediaType=image_index["mediaType"])
    else:
        top = manifest_descriptor
    if annotations:
        top["annotations"] = annotations
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _member(tar, "blobs", directory=True)
        _member(tar, "blobs/sha256", directory=True)
        for digest in sorted(blobs):
            _member(tar, f"blobs/sha256/{digest}", blobs[digest])
        _member(tar, "index.json", json.dumps(index).encode())
        if docker_manifest:
            _member(tar, "manifest.json", json.dumps([{
                "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
                "RepoTags": [image_name or tag] if tag else [],
                "Layers": ["blobs/sha256/" + d["digest"].split(":")[1] for d in layer_descriptors]}]).encode())
        _member(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return path


def reordered(src: Path, dst: Path, key) -> Path:
    """The same members in another order (e.g. manifest.json first or last), streamed."""
    with tarfile.open(src) as old:
        members = sorted(old.getmembers(), key=key)
        with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as new:
            for info in members:
                new.addfile(info, old.extractfile(info) if info.isreg() else None)
    return dst


def with_member_first(src: Path, dst: Path, name: str, data: bytes) -> Path:
    """A copy of `src` with one more member in front (a decoy a reader that stops early would take)."""
    with tarfile.open(src) as old, tarfile.open(dst, "w") as new:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        new.addfile(info, io.BytesIO(data))
        for member in old:
            new.addfile(member, old.extractfile(member) if member.isreg() else None)
    return dst


def through_pipe(tmp_path, path, **kw):
    """Archive() on a named pipe the archive is written into: one pass, no seeking."""
    fifo = tmp_path / "pipe"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb", buffering=0) as out, open(path, "rb") as src:
            while chunk := src.read(1 << 16):
                try:
                    out.write(chunk)
                except BrokenPipeError:
                    return

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        return Archive(fifo, **kw)
    finally:  # a reader that gave up early closed the pipe: the writer's next write fails and it returns
        writer.join(10)
