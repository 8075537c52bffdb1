"""The archive reader on small archives the tests make: layouts, whiteouts, accounting, bad input."""

from __future__ import annotations

import io
import tarfile

import pytest
from tarmaker import layer_bytes, legacy_save, oci_save, rootfs

from saveexport.archives import LEGACY, OCI, ROOTFS, Archive, compare, decompose, flatten, verify
from saveexport.archives.entries import normalise
from saveexport.errors import ArchiveError

BASE = [("bin/",), ("bin/sh", b"#!shell" * 10), ("etc/",), ("etc/os-release", b"ID=test\n"),
        ("var/",), ("var/cache/",), ("var/cache/big", b"x" * 5000), ("var/cache/keep", b"k"),
        ("opt/",), ("opt/a", b"aa"), ("opt/sub/",), ("opt/sub/b", b"bbb"), ("data/",)]
# Layer 2 removes a file, overwrites one, hides opt/'s old contents, and adds a new file there.
TOP = [("etc/",), ("etc/os-release", b"ID=test2\nVERSION=2\n"), ("var/cache/",), ("var/cache/.wh.big", b""),
       ("opt/",), ("opt/.wh..wh..opq", b""), ("opt/new", b"new"), ("usr/",), ("usr/link", "->", "/bin/sh")]


@pytest.fixture
def layers():
    return [layer_bytes(BASE), layer_bytes(TOP)]


@pytest.mark.parametrize("name, expected", [("./usr/bin/", "usr/bin"), ("/etc/hosts", "etc/hosts"), (".", ""),
                                            ("a/../b", "b"), ("../../etc/passwd", "etc/passwd")])
def test_normalise(name, expected):
    assert normalise(name) == expected


def test_legacy_layout_is_detected_and_read(tmp_path, layers):
    path = legacy_save(tmp_path / "save.tar", layers, tags=("example:1", "example:2"))
    archive = Archive(path)
    assert archive.layout == LEGACY
    assert [image.repo_tags for image in archive.images] == [["example:1", "example:2"]]
    assert [layer.size for layer in archive.images[0].layers] == [len(b) for b in layers]
    assert archive.images[0].config["config"]["Cmd"] == ["sh"]


@pytest.mark.parametrize("docker_manifest", [True, False], ids=["with-manifest.json", "index-only"])
def test_oci_layout_is_detected_and_read(tmp_path, layers, docker_manifest):
    path = oci_save(tmp_path / "save.tar", layers, docker_manifest=docker_manifest)
    archive = Archive(path)
    assert archive.layout == OCI
    image = archive.images[0]
    assert len(image.layers) == 2
    assert image.repo_tags[0].endswith("example:1") or image.repo_tags == ["docker.io/library/example:1"]
    assert flatten(archive.images[0]).files["etc/os-release"].size == len(b"ID=test2\nVERSION=2\n")


def test_flatten_applies_whiteouts_and_opaque_dirs_and_counts_shadowed_bytes(tmp_path, layers):
    archive = Archive(legacy_save(tmp_path / "save.tar", layers))
    flat = flatten(archive.images[0])
    files = flat.files
    assert "var/cache/big" not in files and "var/cache/keep" in files
    assert "opt/a" not in files and "opt/sub/b" not in files and "opt/sub" not in files
    assert "opt/new" in files and "opt" in files
    assert files["usr/link"].type == "symlink" and files["usr/link"].linkname == "/bin/sh"
    # hidden: big (5000) + the old os-release (8) + opt/a (2) + opt/sub/b (3)
    assert flat.layers[0].shadowed_bytes == 5000 + 8 + 2 + 3
    assert flat.layers[1].shadowed_bytes == 0
    assert flat.layers[1].removed == 2 and flat.layers[1].changed >= 1


def test_gzip_layers_are_read_and_reported(tmp_path):
    layers = [layer_bytes(BASE, compress=True), layer_bytes(TOP, compress=True)]
    archive = Archive(oci_save(tmp_path / "save.tar", layers))
    assert [layer.compression for layer in archive.images[0].layers] == ["gzip", "gzip"]
    assert "opt/new" in flatten(archive.images[0]).files


def test_repeated_layers_linked_inside_the_archive_are_followed(tmp_path):
    same = layer_bytes(BASE)
    archive = Archive(legacy_save(tmp_path / "save.tar", [same, same], duplicate_as_symlink=True))
    flat = flatten(archive.images[0])
    assert flat.layers[1].size == flat.layers[0].size == len(same)
    assert flat.layers[0].shadowed_bytes == sum(len(i[1]) for i in BASE if len(i) == 2 and isinstance(i[1], bytes))


def test_export_is_a_rootfs_and_the_diff_explains_each_difference(tmp_path, layers):
    save = legacy_save(tmp_path / "save.tar", layers, volumes=["/data"])
    export_items = [i for i in BASE + TOP if not i[0].startswith(("opt/a", "opt/sub", "var/cache/big", "var/cache/.wh",
                                                                  "opt/.wh"))]
    export_items = [i for i in export_items if i[0] != "etc/os-release"] + [
        ("etc/os-release", b"ID=test2\nVERSION=2\n"), (".dockerenv", b""), ("etc/hosts", b""), ("dev/",),
        ("dev/console", "char"), ("data/db", b"volume contents"), ("tmp/",), ("tmp/runtime.pid", b"42")]
    export = rootfs(tmp_path / "export.tar", export_items)
    s, e = Archive(save), Archive(export)
    assert e.layout == ROOTFS
    flat = flatten(s.images[0])
    diff = compare(flat, e.rootfs_entries(), volumes=["/data"], runtime_paths=["/tmp/runtime.pid", "/tmp"])
    parts = decompose(s, s.images[0], flat, e, diff)
    causes = {d.path: d.cause for d in diff.differences}
    assert causes[".dockerenv"] == causes["etc/hosts"] == causes["dev"] == causes["dev/console"] == "container-only"
    assert causes["data/db"] == "volume"
    assert causes["tmp/runtime.pid"] == "runtime-change" and causes["tmp"] == "runtime-change"
    assert "unexplained" not in diff.by_cause()
    # The decomposition adds up to the measured difference, byte for byte.
    assert parts["total"] == parts["check_save_minus_export"] == save.stat().st_size - export.stat().st_size
    assert parts["shadowed_by_later_layers"] == 5013


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable tar"),
    (b"\x00" * 100, "not a readable tar"),
    (b"this is not a tar archive at all" * 40, "not a readable tar"),
])
def test_unreadable_archives_give_one_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=words):
        Archive(path)


def test_a_manifest_naming_a_missing_layer_is_refused(tmp_path, layers):
    path = legacy_save(tmp_path / "save.tar", layers)
    broken = tmp_path / "broken.tar"
    with tarfile.open(path) as src, tarfile.open(broken, "w") as dst:
        for info in src:
            if not info.name.endswith("layer.tar") or "missing" in info.name:
                dst.addfile(info, src.extractfile(info) if info.isreg() else None)
    with pytest.raises(ArchiveError, match="does not hold"):
        Archive(broken)


def test_a_truncated_layer_is_refused_when_read(tmp_path, layers):
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as tar:
        cut = tar.getmember("var/cache/big").offset_data + 100  # in the middle of a file's data
    path = legacy_save(tmp_path / "save.tar", [layers[0][:cut], layers[1]])
    with pytest.raises(ArchiveError, match="truncated"):
        Archive(path)


def test_pre_manifest_save_archives_are_named_as_such(tmp_path):
    path = tmp_path / "old.tar"
    empty_layer = layer_bytes([])
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("abc/layer.tar")
        info.size = len(empty_layer)
        tar.addfile(info, io.BytesIO(empty_layer))
    with pytest.raises(ArchiveError, match="pre-1.10"):
        Archive(path)


def test_oci_digest_that_escapes_the_archive_is_refused(tmp_path, layers):
    path = oci_save(tmp_path / "save.tar", layers, docker_manifest=False)
    evil = tmp_path / "evil.tar"
    with tarfile.open(path) as src, tarfile.open(evil, "w") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isreg() else None
            if info.name == "index.json":
                data = b'{"manifests": [{"digest": "sha256:../../etc/passwd"}]}'
                info.size = len(data)
            dst.addfile(info, tarfile.io.BytesIO(data) if data is not None else None)
    with pytest.raises(ArchiveError, match="unusable digest"):
        Archive(evil)


def test_zstd_layers_as_the_containerd_store_writes_them_verify(tmp_path):
    import zstandard

    layers = [zstandard.ZstdCompressor().compress(layer_bytes(BASE)), zstandard.ZstdCompressor().compress(layer_bytes(TOP))]
    archive = Archive(oci_save(tmp_path / "save.tar", layers))
    assert [layer.compression for layer in archive.images[0].layers] == ["zstd", "zstd"]
    assert verify(archive) == []
    assert "opt/new" in flatten(archive.images[0]).files


def test_podman_docker_archive_layers_at_the_top_level_are_read(tmp_path, layers):
    archive = Archive(legacy_save(tmp_path / "podman.tar", layers, podman=True))
    assert archive.layout == LEGACY and len(archive.images[0].layers) == 2
    assert verify(archive) == []


def test_an_archive_with_two_images_lists_both(tmp_path, layers):
    first = Archive(legacy_save(tmp_path / "a.tar", layers, tags=("one:1",)))
    assert first.images[0].repo_tags == ["one:1"]
    path = oci_save(tmp_path / "o.tar", layers, tag="two:2")
    assert Archive(path).images[0].repo_tags[0].endswith("two:2")


def test_layer_digests_are_verified_against_the_config(tmp_path, layers):
    archive = Archive(legacy_save(tmp_path / "save.tar", layers))
    assert verify(archive) == []
    skipped = Archive(legacy_save(tmp_path / "save2.tar", layers), hash_layers=False)
    assert skipped.images[0].layers[0].diff_id == "" and verify(skipped) == []
