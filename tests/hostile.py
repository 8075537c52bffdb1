"""A corpus of hostile and broken archives, built on the fly: each is a (name, builder, expected) case.

expected: 2 = unusable input (one line, exit 2), 1 = verification failure (exit 1), 0 = fine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import tarfile
from pathlib import Path
from typing import Callable

from tarmaker import config_for, gcr_tarball, layer_bytes, oci_save, with_member_first

BASE = [("bin/",), ("bin/sh", b"#!" * 50), ("etc/",), ("etc/passwd", b"root:x:0:0\n")]
TOP = [("etc/",), ("etc/.wh.passwd", b""), ("tmp/",), ("tmp/x", b"x")]


def _tar(path: Path, members: list[tuple]) -> Path:
    """members: (name, data) regular files, (name, None) directories, (name, "->", target) symlinks,
    (name, "=>", target) hard links, or a ready TarInfo with data."""
    with open(path, "wb") as out:
        _tar_into(out, members)
    return path


def _layer_of(members: list[tuple]) -> bytes:
    """A layer's bytes, members as for _tar."""
    buffer = io.BytesIO()
    _tar_into(buffer, members)
    return buffer.getvalue()


def _device(name: str, kind: bytes = tarfile.CHRTYPE, major: int = 0, minor: int = 0) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o660
    return (info, None)


def _tar_into(fileobj, members: list[tuple]) -> None:
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in members:
            if isinstance(item[0], tarfile.TarInfo):
                tar.addfile(item[0], io.BytesIO(item[1]) if item[1] is not None else None)
                continue
            info = tarfile.TarInfo(item[0])
            if len(item) == 3:
                info.type = tarfile.SYMTYPE if item[1] == "->" else tarfile.LNKTYPE
                info.linkname = item[2]
                tar.addfile(info)
            elif item[1] is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(item[1])
                tar.addfile(info, io.BytesIO(item[1]))


def _legacy(path: Path, manifest, *, layers=None, config=None, extra=()) -> Path:
    layers = [layer_bytes(BASE), layer_bytes(TOP)] if layers is None else layers
    config_bytes = json.dumps(config_for(layers) if config is None else config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    members = [(f"l{i}/layer.tar", data) for i, data in enumerate(layers)] + [(config_name, config_bytes)]
    members += list(extra)
    if manifest is not None:
        if callable(manifest):
            manifest = manifest(config_name)
        members.append(("manifest.json", manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()))
    return _tar(path, members)


def _good_manifest(config_name, layers=("l0/layer.tar", "l1/layer.tar")):
    return [{"Config": config_name, "RepoTags": ["hostile:1"], "Layers": list(layers)}]


def _rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a tar, letting `change` replace (or, returning None, drop) each regular member's data."""
    with tarfile.open(src) as old, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as new:
        for info in old:
            data = old.extractfile(info).read() if info.isreg() else None
            if data is not None:
                data = change(info.name, data)
                if data is None:
                    continue
                info.size = len(data)
            new.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def _oci(tmp: Path, **kw) -> Path:
    return oci_save(tmp / "oci-src.tar", [layer_bytes(BASE), layer_bytes(TOP)], **kw)


def _nested_index(tmp: Path, depth: int) -> Path:
    src = _oci(tmp, docker_manifest=False)

    def change(name, data):
        if name != "index.json":
            return data
        index = json.loads(data)
        for _ in range(depth):
            index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "0" * 64, "size": 1}]}
        return json.dumps(index).encode()

    # every level points to the same missing-or-self blob: the depth limit must trip first
    path = _rewrite(src, tmp / "nested.tar", change)
    with tarfile.open(path, "a") as tar:
        loop = json.dumps({"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "0" * 64}]}).encode()
        info = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        info.size = len(loop)
        tar.addfile(info, io.BytesIO(loop))
    return path


def _pax_header(tmp: Path, key: str, size: int) -> Path:
    """A pax extended header that declares `size` bytes (written in full: the reader must refuse it first)."""
    payload = f"{len(key) + size + 4} {key}=".encode()
    body = payload + b"a" * (size - len(payload) - 1) + b"\n"
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(body)
    path = tmp / "pax.tar"
    with open(path, "wb") as out:
        out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        out.write(body + b"\0" * (-len(body) % 512))
        out.write(tarfile.TarInfo("x").tobuf(format=tarfile.USTAR_FORMAT))
        out.write(b"\0" * 1024)
    return path


def _gnu_longname(tmp: Path, size: int) -> Path:
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = size
    path = tmp / "gnu.tar"
    with open(path, "wb") as out:
        out.write(info.tobuf(format=tarfile.GNU_FORMAT))
        out.write(b"a" * size + b"\0" * (-size % 512))
        out.write(b"\0" * 1024)
    return path


def _truncate(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _special_export(tmp: Path) -> Path:
    device = tarfile.TarInfo("dev/evil")
    device.type = tarfile.CHRTYPE
    device.devmajor, device.devminor = 1, 3
    fifo = tarfile.TarInfo("tmp/fifo")
    fifo.type = tarfile.FIFOTYPE
    setuid = tarfile.TarInfo("bin/su")
    setuid.size, setuid.mode = 3, 0o4755
    return _tar(tmp / "special.tar", [("bin/", None), ("dev/", None), ("tmp/", None), (device, None),
                                      (fifo, None), (setuid, b"abc"), ("etc/", None), ("etc/os-release", b"x")])


MINIMAL_CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}

CASES: list[tuple[str, Callable[[Path], Path], int]] = [
    # not archives at all
    ("empty-file", lambda t: _write(t / "e.tar", b""), 2),
    ("random-bytes", lambda t: _write(t / "r.tar", bytes(range(256)) * 40), 2),
    ("short-zeros", lambda t: _write(t / "z.tar", b"\0" * 100), 2),
    ("text-file", lambda t: _write(t / "t.tar", b"docker save -o images.tar postgres:9.6\n" * 50), 2),
    # truncated or corrupt data
    ("truncated-outer", lambda t: _truncate(_legacy(t / "s.tar", _good_manifest), t / "cut.tar", 0.4), 2),
    ("truncated-layer", lambda t: _legacy(t / "s.tar", _good_manifest,
                                          layers=[layer_bytes(BASE)[:700], layer_bytes(TOP)]), 2),
    ("gzip-outer-truncated", lambda t: _truncate(_gz(_legacy(t / "s.tar", _good_manifest), t / "s.tar.gz"),
                                                 t / "cut.tar.gz", 0.5), 2),
    ("gzip-outer-corrupt", lambda t: _write(t / "c.tar.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 600), 2),
    ("gzip-layer-corrupt", lambda t: _legacy(t / "s.tar", _good_manifest, config=MINIMAL_CONFIG,
                                             layers=[b"\x1f\x8b\x08\x00" + b"\x00" * 700, layer_bytes(TOP)]), 2),
    ("xz-outer-corrupt", lambda t: _write(t / "c.tar.xz", b"\xfd7zXZ\x00" + b"\x01" * 600), 2),
    ("zstd-outer-corrupt", lambda t: _write(t / "c.tar.zst", b"\x28\xb5\x2f\xfd" + b"\x02" * 600), 2),
    # manifests that lie or point outside
    ("manifest-not-json", lambda t: _legacy(t / "s.tar", b"{not json"), 2),
    ("manifest-not-a-list", lambda t: _legacy(t / "s.tar", {"Config": "x"}), 2),
    ("manifest-entry-not-an-object", lambda t: _legacy(t / "s.tar", ["just a string"]), 2),
    ("manifest-missing-layer", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, ["l0/layer.tar",
                                                                                          "l9/layer.tar"])), 2),
    ("manifest-layer-climbs-out", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(
        c, ["l0/layer.tar", "../../etc/passwd"])), 2),
    ("manifest-layer-absolute", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, ["/etc/passwd"])), 2),
    ("manifest-missing-config", lambda t: _legacy(t / "s.tar", [{"Config": "nope.json", "Layers": []}]), 2),
    ("config-not-an-object", lambda t: _legacy(t / "s.tar", _good_manifest, config=["a", "list"]), 2),
    ("layer-link-climbs-out", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, ["l0/layer.tar",
                                                                                         "l2/layer.tar"]),
                                                extra=[("l2/layer.tar", "->", "../../../etc/shadow")]), 2),
    ("layer-link-loop", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, ["a/layer.tar"]),
                                          extra=[("a/layer.tar", "->", "../b/layer.tar"),
                                                 ("b/layer.tar", "->", "../a/layer.tar")]), 2),
    ("layer-is-json", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, [c])), 2),
    ("pre-1.10-layout", lambda t: _tar(t / "old.tar", [("abc/", None), ("abc/layer.tar", layer_bytes(BASE)),
                                                       ("repositories", b"{}")]), 2),
    ("oci-digest-climbs-out", lambda t: _rewrite(_oci(t, docker_manifest=False), t / "o.tar", lambda n, d: (
        b'{"schemaVersion": 2, "manifests": [{"digest": "sha256:../../etc/passwd"}]}' if n == "index.json" else d)), 2),
    ("oci-index-not-json", lambda t: _rewrite(_oci(t, docker_manifest=False), t / "o.tar",
                                              lambda n, d: b"[[[" if n == "index.json" else d), 2),
    ("oci-index-nests-too-deep", lambda t: _nested_index(t, 3), 2),
    ("oci-without-oci-layout", lambda t: _rewrite(_oci(t, docker_manifest=False), t / "o.tar",
                                                  lambda n, d: None if n == "oci-layout" else d), 2),
    ("json-nested-too-deep", lambda t: _legacy(t / "s.tar", b"[" * 100_000 + b"]" * 100_000), 2),
    ("json-too-large", lambda t: _legacy(t / "s.tar", b'["' + b"a" * (17 << 20) + b'"]'), 2),
    # header bombs and absurd paths
    ("pax-header-bomb", lambda t: _pax_header(t, "comment", 4 << 20), 2),
    ("gnu-longname-bomb", lambda t: _gnu_longname(t, 3 << 20), 2),
    ("path-too-long", lambda t: _tar(t / "long.tar", [("a/" * 10 + "b" * 5000, b"x")]), 2),
    ("path-too-deep", lambda t: _tar(t / "deep.tar", [("d/" * 300 + "f", b"x")]), 2),
    # verification failures: readable, but not what the specs require
    ("legacy-wrong-diff-id", lambda t: _legacy(t / "s.tar", _good_manifest, config=dict(
        config_for([layer_bytes(BASE), layer_bytes(TOP)]), rootfs={"type": "layers", "diff_ids": [
            "sha256:" + "1" * 64, "sha256:" + "2" * 64]})), 1),
    ("legacy-layer-count-mismatch", lambda t: _legacy(t / "s.tar", lambda c: _good_manifest(c, ["l0/layer.tar"])), 1),
    ("legacy-config-digest-mismatch", lambda t: _rewrite(_legacy(t / "s.tar", _good_manifest), t / "c.tar",
                                                         lambda n, d: d.replace(b'"amd64"', b'"arm64"')
                                                         if n.endswith(".json") and n != "manifest.json" else d), 1),
    ("config-missing-fields", lambda t: _legacy(t / "s.tar", _good_manifest, config={
        "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(layer_bytes(BASE)).hexdigest(),
            "sha256:" + hashlib.sha256(layer_bytes(TOP)).hexdigest()]}}), 1),
    ("oci-blob-digest-mismatch", lambda t: _rewrite(_oci(t), t / "o.tar", lambda n, d: d.replace(b"#!", b"!#")
                                                    if n.startswith("blobs/") and b"#!" in d else d), 1),
    ("oci-layout-version-wrong", lambda t: _rewrite(_oci(t), t / "o.tar", lambda n, d: b'{"imageLayoutVersion":"9"}'
                                                    if n == "oci-layout" else d), 1),
    # fine, though unusual
    ("xz-compressed-save", lambda t: _xz(_legacy(t / "s.tar", _good_manifest), t / "s.tar.xz"), 0),
    ("zstd-compressed-oci", lambda t: _zst(_oci(t), t / "o.tar.zst"), 0),
    # empty and hollow: nothing in, nothing to say but that
    ("tar-of-zero-blocks", lambda t: _write(t / "z.tar", bytes(10240)), 2),
    ("gzip-of-zeros", lambda t: _write(t / "z.tar.gz", gzip.compress(bytes(10240))), 2),
    ("manifest-empty-list", lambda t: _legacy(t / "s.tar", []), 2),
    ("oci-index-manifests-null", lambda t: _index_says(t, None), 2),
    ("oci-index-manifests-empty", lambda t: _index_says(t, []), 2),
    ("oci-index-to-an-empty-index", lambda t: _index_to_index(t, []), 2),
    ("oci-index-only-missing-platforms", lambda t: _index_to_index(t, [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "e" * 64, "size": 9,
         "platform": {"os": "linux", "architecture": "arm64"}}]), 2),
    # go-containerregistry's layout, made hostile
    ("gcr-config-climbs-out", lambda t: _gcr_manifest(t, lambda m: [dict(m[0], Config="../" + m[0]["Config"])]), 2),
    ("gcr-layer-is-text", lambda t: _gcr_manifest(t, lambda m: [dict(m[0], Layers=["notes.txt"])],
                                                  extra=[("notes.txt", b"just some text, not a layer\n" * 40)]), 2),
    ("gcr-layer-name-lies", lambda t: _gcr_renamed_layer(t), 1),
    ("manifest-held-twice", lambda t: _held_twice(t), 1),
    # unsafe members inside image layers: readable, so exit 1, each with its code
    ("layer-member-climbs", lambda t: _unsafe_layer(t, [("../../evil.txt", b"x")]), 1),
    ("layer-member-absolute", lambda t: _unsafe_layer(t, [("/etc/cron.d/x", b"* * * * * root sh\n")]), 1),
    ("layer-hardlink-climbs", lambda t: _unsafe_layer(t, [("etc/", None), ("etc/shadow", b"s"),
                                                          ("etc/copy", "=>", "../../../etc/shadow")]), 1),
    ("layer-hardlink-before-its-target", lambda t: _unsafe_layer(t, [("a", "=>", "b"), ("b", b"b")]), 1),
    ("layer-writes-through-its-own-symlink", lambda t: _unsafe_layer(t, [("etc", "->", "/etc"),
                                                                         ("etc/evil.conf", b"x")]), 1),
    ("layer-writes-through-a-lower-symlink", lambda t: _legacy(t / "s.tar", _good_manifest, layers=[
        _layer_of([("etc", "->", "/etc")]), _layer_of([("etc/evil.conf", b"x")])]), 1),
    ("layer-symlink-climbs-out", lambda t: _unsafe_layer(t, [("usr/", None), ("usr/x", "->", "../../../../etc")]), 1),
    ("layer-block-device", lambda t: _unsafe_layer(t, [("dev/", None), _device("dev/sda", tarfile.BLKTYPE, 8, 0)]), 1),
    ("layer-char-device-misnamed", lambda t: _unsafe_layer(t, [("dev/", None), _device("dev/null", major=1, minor=1)]), 1),
    ("layer-fifo", lambda t: _unsafe_layer(t, [("run/", None), _device("run/initctl", tarfile.FIFOTYPE)]), 1),
    ("outer-member-climbs", lambda t: _legacy(t / "s.tar", _good_manifest, extra=[("../outside", b"x")]), 1),
    ("export-with-devices-fifos-setuid", _special_export, 1),
    ("export-with-climbing-names", lambda t: _tar(t / "x.tar", [("../../etc/evil", b"x"), ("/abs/evil", b"y"),
                                                                ("ok/", None), ("ok/link", "->", "../../../etc"),
                                                                ("ok/hard", "=>", "/etc/passwd")]), 1),
    # fine: what real roots hold
    ("layer-standard-devices", lambda t: _unsafe_layer(t, [("dev/", None), _device("dev/null", major=1, minor=3),
                                                           _device("dev/console", major=5, minor=1)]), 0),
    ("layer-symlink-replaced-by-a-directory", lambda t: _legacy(t / "s.tar", _good_manifest, layers=[
        _layer_of([("etc", "->", "/etc")]), _layer_of([("etc/", None), ("etc/app.conf", b"x")])]), 0),
    ("layer-symlink-whited-out", lambda t: _legacy(t / "s.tar", _good_manifest, layers=[
        _layer_of([("etc", "->", "/etc")]), _layer_of([(".wh.etc", b""), ("etc/", None), ("etc/app.conf", b"x")])]), 0),
    ("layer-relative-symlinks-inside", lambda t: _unsafe_layer(t, [("usr/", None), ("usr/lib/", None),
                                                                   ("lib", "->", "usr/lib"),
                                                                   ("usr/lib/x", "->", "../../etc/x")]), 0),
    ("export-with-a-container-root", lambda t: _tar(t / "root.tar", [
        ("dev/", None), ("dev/console", b""), ("dev/pts/", None), ("dev/shm/", None), _device("dev/null", major=1, minor=3),
        ("etc/", None), ("etc/mtab", "->", "/proc/mounts"), ("proc/", None), ("sys/", None), (".dockerenv", b""),
        ("bin", "->", "usr/bin"), ("usr/", None), ("usr/bin/", None), ("usr/bin/sh", b"#!")]), 0),
]

# what each unsafe case must be named by (inspect --json): code, and the layer it is in ("" outside layers)
CODES = {
    "layer-member-climbs": ("unsafe-name", "l1/layer.tar"), "layer-member-absolute": ("unsafe-name", "l1/layer.tar"),
    "layer-hardlink-climbs": ("hardlink-outside-layer", "l1/layer.tar"),
    "layer-hardlink-before-its-target": ("hardlink-outside-layer", "l1/layer.tar"),
    "layer-writes-through-its-own-symlink": ("written-through-symlink", "l1/layer.tar"),
    "layer-writes-through-a-lower-symlink": ("written-through-symlink", "l1/layer.tar"),
    "layer-symlink-climbs-out": ("symlink-climbs-out", "l1/layer.tar"),
    "layer-block-device": ("device-node", "l1/layer.tar"), "layer-char-device-misnamed": ("device-node", "l1/layer.tar"),
    "layer-fifo": ("device-node", "l1/layer.tar"), "outer-member-climbs": ("unsafe-name", ""),
    "export-with-devices-fifos-setuid": ("device-node", ""), "export-with-climbing-names": ("unsafe-name", ""),
    "gcr-layer-name-lies": ("blob-digest-mismatch", None), "manifest-held-twice": ("member-held-twice", None),
}


def _unsafe_layer(tmp: Path, members: list[tuple]) -> Path:
    """A save archive whose second layer holds `members`."""
    return _legacy(tmp / "s.tar", _good_manifest, layers=[layer_bytes(BASE), _layer_of(members)])


def _index_says(tmp: Path, manifests) -> Path:
    return _rewrite(_oci(tmp, docker_manifest=False), tmp / "o.tar", lambda n, d: json.dumps(
        {"schemaVersion": 2, "manifests": manifests}).encode() if n == "index.json" else d)


def _index_to_index(tmp: Path, children: list) -> Path:
    """index.json names an image index (as containerd's store saves) whose own list is `children`."""
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": children}).encode()
    digest = hashlib.sha256(inner).hexdigest()
    path = _index_says(tmp, [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
                              "size": len(inner)}])
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo(f"blobs/sha256/{digest}")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    return path


def _gcr(tmp: Path) -> Path:
    return gcr_tarball(tmp / "gcr-src.tar", [(["hostile:1"], [layer_bytes(BASE), layer_bytes(TOP)])])


def _gcr_manifest(tmp: Path, change, extra=()) -> Path:
    path = _rewrite(_gcr(tmp), tmp / "g.tar", lambda n, d: json.dumps(change(json.loads(d))).encode()
                    if n == "manifest.json" else d)
    with tarfile.open(path, "a") as tar:
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _gcr_renamed_layer(tmp: Path) -> Path:
    """A layer under another layer's digest name: its bytes no longer hash to what its name says."""
    src = _gcr(tmp)
    with tarfile.open(src) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    first, second = manifest[0]["Layers"]
    swapped = {first: second, second: first}

    def rename(name):
        return swapped.get(name, name)

    path = tmp / "g.tar"
    with tarfile.open(src) as old, tarfile.open(path, "w") as new:
        for info in old:
            data = old.extractfile(info).read()
            if info.name == "manifest.json":
                data = json.dumps([dict(manifest[0], Layers=[second, first])]).encode()
                info.size = len(data)
            info.name = rename(info.name)
            new.addfile(info, io.BytesIO(data))
    return path


def _held_twice(tmp: Path) -> Path:
    """manifest.json twice: a decoy first, the real one last (the one tar extraction and docker load take)."""
    src = _legacy(tmp / "s.tar", _good_manifest)
    decoy = json.dumps([{"Config": "nothing.json", "RepoTags": ["decoy:1"], "Layers": []}]).encode()
    return with_member_first(src, tmp / "twice.tar", "manifest.json", decoy)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gz(src: Path, dst: Path) -> Path:
    dst.write_bytes(gzip.compress(src.read_bytes(), mtime=0))
    return dst


def _xz(src: Path, dst: Path) -> Path:
    dst.write_bytes(lzma.compress(src.read_bytes()))
    return dst


def _zst(src: Path, dst: Path) -> Path:
    import zstandard

    dst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    return dst
