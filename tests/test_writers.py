"""Archives as other writers lay them out (go-containerregistry, containers/image for Podman, skopeo and
buildah, Docker 25+, containerd's store), read from a file, a compressed file and a pipe."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest
from tarmaker import (config_for, containers_image_docker_archive, gcr_tarball, layer_bytes, legacy_save,
                      oci_archive, oci_save, reordered, through_pipe, uncompressed, with_member_first)

from saveexport import cli
from saveexport.archives import LEGACY, OCI, Archive, flatten, verify
from saveexport.archives.source import Limits
from saveexport.errors import ArchiveError

BASE = [("bin/",), ("bin/sh", b"#!shell" * 10), ("etc/",), ("etc/os-release", b"ID=test\n"), ("usr/",),
        ("usr/lib/",), ("usr/lib/os-release", b"ID=test\n"), ("lib", "->", "usr/lib")]
TOP = [("etc/",), ("etc/os-release", b"ID=test2\n"), ("etc/.wh.gone", b""), ("srv/",), ("srv/app", b"app")]
EMPTY = bytes(1024)  # the layer a WORKDIR or an empty RUN makes: a tar with no members


def _diff_ids(layers):
    return ["sha256:" + hashlib.sha256(uncompressed(layer)).hexdigest() for layer in layers]


def _read(tmp_path, path, how, **kw):
    if how == "file":
        return Archive(path, **kw)
    if how == "gzip":
        packed = path.with_suffix(".tar.gz")
        with open(path, "rb") as src, gzip.open(packed, "wb") as dst:
            dst.write(src.read())
        return Archive(packed, **kw)
    return through_pipe(tmp_path, path, **kw)


HOW = ["file", "gzip", "pipe"]


@pytest.mark.parametrize("how", HOW)
def test_go_containerregistry_single_image(tmp_path, how):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = gcr_tarball(tmp_path / "crane.tar", [(["registry.example/app:1"], layers)])
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json" and names[0].startswith("sha256:") and names[1].endswith(".tar.gz")
    archive = _read(tmp_path, path, how)
    assert archive.layout == LEGACY
    image = archive.images[0]
    assert image.repo_tags == ["registry.example/app:1"]
    assert image.image_id == names[0] and not image.image_id.startswith("sha256:sha256:")
    assert [layer.compression for layer in image.layers] == ["gzip", "gzip"]
    assert [layer.diff_id for layer in image.layers] == _diff_ids(layers)
    assert verify(archive) == []
    assert "srv/app" in flatten(image).files


@pytest.mark.parametrize("how", HOW)
def test_go_containerregistry_multi_image_stores_shared_layers_once(tmp_path, how):
    base, top = layer_bytes(BASE), layer_bytes(TOP)
    other = layer_bytes([("opt/",), ("opt/tool", b"tool")])
    path = gcr_tarball(tmp_path / "multi.tar", [(["b.example/two:1", "b.example/two:2"], [base, other]),
                                                (["a.example/one:1"], [base, top])])
    archive = _read(tmp_path, path, how)
    assert [image.repo_tags for image in archive.images] == [["a.example/one:1"], ["b.example/two:1", "b.example/two:2"]]
    assert archive.images[0].layers[0] is archive.images[1].layers[0]  # one member, read once
    assert verify(archive) == []


@pytest.mark.parametrize("how", HOW)
def test_containers_image_docker_archive_podman_and_skopeo(tmp_path, how):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = containers_image_docker_archive(tmp_path / "podman.tar", [(["localhost/app:1"], layers)])
    archive = _read(tmp_path, path, how)
    image = archive.images[0]
    assert archive.layout == LEGACY and image.repo_tags == ["localhost/app:1"]
    assert [layer.member for layer in image.layers] == [hashlib.sha256(layer).hexdigest() + ".tar" for layer in layers]
    assert verify(archive) == []
    # the legacy <id>/layer.tar members are symlinks to the top-level layers, and lead to them
    links = [name for name, entry in archive.entries.items() if entry.type == "symlink"]
    assert len(links) == 2 and archive.layer(links[0]) in image.layers


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
@pytest.mark.parametrize("how", HOW)
def test_oci_archive_of_podman_skopeo_and_buildah(tmp_path, how, compression):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = oci_archive(tmp_path / "oci.tar", layers, compression=compression, tag="1")
    archive = _read(tmp_path, path, how)
    image = archive.images[0]
    assert archive.layout == OCI and image.repo_tags == ["1"]
    assert [layer.compression for layer in image.layers] == [compression or "none"] * 2
    assert [layer.diff_id for layer in image.layers] == _diff_ids(layers)
    assert image.manifest_digest.startswith("sha256:") and image.config_digest == image.image_id
    assert verify(archive) == []


@pytest.mark.parametrize("how", HOW)
def test_docker_25_oci_save_reads_manifest_json_pointing_into_blobs(tmp_path, how):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    archive = _read(tmp_path, oci_save(tmp_path / "d25.tar", layers, tag="app:1"), how)
    assert archive.layout == OCI and archive.images[0].repo_tags == ["app:1"]
    assert [layer.member for layer in archive.images[0].layers][0].startswith("blobs/sha256/")
    assert verify(archive) == []


def test_docker_25_0_oci_manifests_without_layers_are_read_from_manifest_json(tmp_path):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = oci_archive(tmp_path / "d250.tar", layers, compression=None, empty_oci_layers=True, docker_manifest=True)
    archive = Archive(path)
    assert len(archive.images[0].layers) == 2 and verify(archive) == []
    assert any("lists 0 layer(s)" in note for note in archive.notes)
    # without manifest.json the index is all there is, and its manifest contradicts the config
    bare = reordered(path, tmp_path / "bare.tar", key=lambda m: m.name)
    with tarfile.open(bare) as tar, tarfile.open(tmp_path / "idx.tar", "w") as out:
        for info in tar:
            if info.name != "manifest.json":
                out.addfile(info, tar.extractfile(info) if info.isreg() else None)
    assert [v.code for v in verify(Archive(tmp_path / "idx.tar"))] == ["layer-count-mismatch"]


@pytest.mark.parametrize("docker_manifest", [False, True], ids=["index-only", "with-manifest.json"])
@pytest.mark.parametrize("how", HOW)
def test_containerd_store_save_with_an_index_pointing_to_an_index(tmp_path, how, docker_manifest):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = oci_archive(tmp_path / "ctrd.tar", layers, compression="gzip", tag="app:1",
                       image_name="docker.io/library/app:1", platforms=("linux/amd64",),
                       missing_platforms=("linux/arm64", "linux/s390x"), attestation=True,
                       docker_manifest=docker_manifest)
    archive = _read(tmp_path, path, how)
    assert len(archive.images) == 1
    image = archive.images[0]
    assert image.repo_tags == ["docker.io/library/app:1"] and len(image.layers) == 2
    assert verify(archive) == []
    assert sum("does not hold" in note for note in archive.notes) == 2
    assert any("attestation" in note for note in archive.notes)


def test_legacy_save_whose_repeated_layer_is_a_symlink_to_another(tmp_path):
    same = layer_bytes(BASE)
    archive = Archive(legacy_save(tmp_path / "s.tar", [same, same], duplicate_as_symlink=True))
    assert archive.images[0].layers[0] is archive.images[0].layers[1]
    assert verify(archive) == []


@pytest.mark.parametrize("how", HOW)
def test_manifests_with_empty_layers_and_images_without_layers(tmp_path, how):
    layers = [layer_bytes(BASE), EMPTY, EMPTY, layer_bytes(TOP)]
    archive = _read(tmp_path, gcr_tarball(tmp_path / "e.tar", [(["e:1"], layers)]), how)
    image = archive.images[0]
    assert len(image.layers) == 4 and image.layers[1] is image.layers[2] and image.layers[1].entries == []
    assert verify(archive) == []
    scratch = tmp_path / "scratch.tar"
    config = json.dumps(config_for([])).encode()
    with tarfile.open(scratch, "w") as tar:
        for name, data in ((hashlib.sha256(config).hexdigest() + ".json", config),
                           ("manifest.json", json.dumps([{"Config": hashlib.sha256(config).hexdigest() + ".json",
                                                          "RepoTags": ["scratch:1"], "Layers": None}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    empty_image = Archive(scratch)
    assert empty_image.images[0].layers == [] and verify(empty_image) == []


def test_a_member_held_twice_is_read_from_its_last_copy_and_said(tmp_path):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = gcr_tarball(tmp_path / "g.tar", [(["real:1"], layers)])
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    decoy = json.dumps([dict(manifest[0], RepoTags=["decoy:1"])]).encode()
    twice = with_member_first(path, tmp_path / "twice.tar", "manifest.json", decoy)
    for archive in (Archive(twice), through_pipe(tmp_path, twice)):
        assert archive.images[0].repo_tags == ["real:1"]
        assert [v.code for v in verify(archive)] == ["member-held-twice"]


def test_manifest_first_or_last_makes_no_difference(tmp_path):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    path = gcr_tarball(tmp_path / "g.tar", [(["x:1"], layers)])
    first = reordered(path, tmp_path / "first.tar", key=lambda m: m.name != "manifest.json")
    ids = {Archive(p).images[0].layers[1].diff_id for p in (path, first)}
    assert ids == {_diff_ids(layers)[1]}


def test_a_pipe_that_needs_more_than_it_may_hold_is_one_clear_error(tmp_path):
    layers = [layer_bytes(BASE)]
    path = gcr_tarball(tmp_path / "g.tar", [(["x:1"], layers)])
    with pytest.raises(ArchiveError, match="save the archive to a file"):
        through_pipe(tmp_path, path, limits=Limits(max_held=16))
    assert Archive(path, Limits(max_held=16)).images  # a file is read again where it must be
    packed = path.with_suffix(".tar.gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert Archive(packed, Limits(max_held=16)).images[0].repo_tags == ["x:1"]


def test_standard_input_is_read_in_one_pass(tmp_path):
    path = gcr_tarball(tmp_path / "g.tar", [(["x:1"], [layer_bytes(BASE), layer_bytes(TOP)])])
    with open(path, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "inspect", "--json", "-"], stdin=stdin,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["images"][0]["tags"] == ["x:1"] and summary["bytes"] == path.stat().st_size


def test_metadata_reads_configs_and_no_layer(tmp_path, capsys):
    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    for path in (gcr_tarball(tmp_path / "g.tar", [(["x:1"], layers)]),
                 oci_archive(tmp_path / "o.tar", layers, tag="1", platforms=("linux/amd64",))):
        archive = Archive(path, read_layers=False)
        assert archive.layers == {} and archive.images[0].layers == []
        assert archive.images[0].config["rootfs"]["diff_ids"] == _diff_ids(layers)
        assert cli.main(["inspect", "--metadata", "--json", str(path)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["verified"] is False and summary["images"][0]["diff_ids"] == _diff_ids(layers)


def test_the_fast_metadata_path_answers_as_the_full_reader(tmp_path, capsys):
    """inspect --metadata --json on a plain tar takes a path of its own (archives/metadata.py); its summary is
    the full reader's, and where it declines (compressed, a pipe, an index of indexes, a member held
    twice) the full reader answers."""
    from saveexport.archives import metadata
    from saveexport.archives.summary import inspect_archive

    layers = [layer_bytes(BASE), layer_bytes(TOP)]
    taken = {
        "gcr": gcr_tarball(tmp_path / "g.tar", [(["b:1"], layers), (["a:1", "a:2"], layers[:1])]),
        "podman": containers_image_docker_archive(tmp_path / "p.tar", [(["localhost/p:1"], layers)]),
        "oci": oci_archive(tmp_path / "o.tar", layers, tag="1"),
        "legacy": legacy_save(tmp_path / "l.tar", layers),
    }
    declined = {
        "containerd": oci_archive(tmp_path / "c.tar", layers, tag="app:1", platforms=("linux/amd64",),
                                  missing_platforms=("linux/arm64",)),
        "docker-25": oci_save(tmp_path / "d.tar", layers),
        "held-twice": with_member_first(taken["gcr"], tmp_path / "t.tar", "manifest.json", b"[]"),
    }
    for name, path in {**taken, **declined}.items():
        fast = metadata.summary(str(path))
        assert (fast is not None) == (name in taken), name
        full = inspect_archive(Archive(path, read_layers=False))
        if fast is not None:
            assert fast == full, name
        assert cli.main(["inspect", "--metadata", "--json", str(path)]) == 0
        assert json.loads(capsys.readouterr().out) == full, name
