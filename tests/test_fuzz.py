"""Property-based fuzzing of the parsers: whatever the bytes, the reader answers or raises ArchiveError."""

from __future__ import annotations

import io
import posixpath
import tarfile

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tarmaker import layer_bytes, legacy_save, oci_save, through_pipe

from saveexport.archives import Archive, flatten, verify
from saveexport.archives.entries import normalise
from saveexport.errors import ArchiveError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEGMENT = st.sampled_from(["a", "b", "etc", "..", ".", ".wh.a", ".wh..wh..opq", "x" * 20, "usr", ""])
PATHS = st.lists(SEGMENT, min_size=1, max_size=5).map("/".join)


def _read(path):
    try:
        archive = Archive(path)
        verify(archive)
        for image in archive.images:
            flatten(image)
    except ArchiveError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_crash_the_reader(tmp_path, data):
    path = tmp_path / "fuzz.tar"
    path.write_bytes(data)
    _read(path)


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0.05, 1)), oci=st.booleans())
def test_mutated_save_archives_never_crash_the_reader(tmp_path, flips, cut, oci):
    layers = [layer_bytes([("bin/",), ("bin/sh", b"#!" * 40)]), layer_bytes([("bin/",), ("bin/.wh.sh", b"")])]
    source = (oci_save if oci else legacy_save)(tmp_path / "src.tar", layers)
    data = bytearray(source.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / "mutated.tar"
    path.write_bytes(bytes(data))
    _read(path)


def _image_of(tmp_path, layers):
    """A save archive of these layers (each a list of (path, bytes or None for a directory)), read; or None."""
    built = []
    for items in layers:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in items:
                info = tarfile.TarInfo(name or ".")
                info.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
                info.size = 0 if data is None else len(data)
                tar.addfile(info, None if data is None else io.BytesIO(data))
        built.append(buffer.getvalue())
    try:
        return Archive(legacy_save(tmp_path / "f.tar", built))
    except ArchiveError:
        return None


def _reference_flatten(image):
    """The obvious quadratic reading of the whiteout rules: flatten() must agree with it on every input."""
    files, origin, shadowed = {}, {}, [0] * len(image.layers)

    def hide(path, below, subtree_only=False):
        prefix = path + "/" if path else ""
        for p in [p for p in files if (p.startswith(prefix) or (not subtree_only and p == path))
                  and origin[p] < below and p != ""]:
            shadowed[origin[p]] += files.pop(p).size
            del origin[p]

    for index, layer in enumerate(image.layers):
        for entry in layer.entries:
            parent, base = posixpath.split(entry.path)
            if base == ".wh..wh..opq":
                shadowed[index] += entry.size
                hide(parent, index, subtree_only=True)
            elif base.startswith(".wh."):
                shadowed[index] += entry.size
                hide(posixpath.join(parent, base[4:]), index)
            else:
                previous = files.get(entry.path)
                if previous is not None:
                    shadowed[origin[entry.path]] += previous.size
                    if previous.type == "dir" and entry.type != "dir":
                        hide(entry.path, index + 1, subtree_only=True)
                files[entry.path] = entry
                origin[entry.path] = index
    return files, origin, shadowed


@FUZZ
@given(layers=st.lists(st.lists(st.tuples(PATHS, st.one_of(st.none(), st.binary(max_size=64))), max_size=16),
                       min_size=1, max_size=5))
def test_flatten_agrees_with_the_plain_reading_of_the_rules(tmp_path, layers):
    """Whatever the layers: the same files and shadowed bytes as the quadratic reading, every byte
    accounted for, no whiteout left behind."""
    archive = _image_of(tmp_path, layers)
    if archive is None:
        return
    image = archive.images[0]
    flat = flatten(image)
    files, origin, shadowed = _reference_flatten(image)
    assert list(flat.files.items()) == list(files.items())
    assert flat.origin == origin
    assert [layer.shadowed_bytes for layer in flat.layers] == shadowed
    assert not any(p.rsplit("/", 1)[-1].startswith(".wh.") for p in flat.files)
    applied = sum(layer.content_bytes for layer in image.layers)
    assert flat.content_bytes + flat.shadowed_bytes == applied


NAMES = st.one_of(st.sampled_from(["sha256:", "layer", "blobs/sha256/", "x/y/", "."]),
                  st.text("abcdef0123456789:._-", min_size=1, max_size=12))


@FUZZ
@given(order=st.permutations(range(4)), names=st.lists(NAMES, min_size=3, max_size=3, unique=True),
       packed=st.booleans())
def test_referenced_members_are_found_whatever_their_names_and_order(tmp_path, order, names, packed):
    """go-containerregistry writes config and layers under names of its own and manifest.json last; any
    writer may. Whatever the names and the order, the reader finds what manifest.json references."""
    import gzip as gz
    import io as _io
    import json as _json

    layers = [layer_bytes([("bin/",), ("bin/sh", b"#!" * 40)]), layer_bytes([("bin/",), ("bin/.wh.sh", b"")],
                                                                           compress=True)]
    from tarmaker import config_for

    config = _json.dumps(config_for(layers)).encode()
    config_name, first, second = names
    keys = {normalise(n) for n in names} | {"manifest.json"}
    assume(len(keys) == 4 and "" not in keys and not any(n.startswith("/") or ".." in n.split("/") for n in names))
    manifest = _json.dumps([{"Config": config_name, "RepoTags": ["f:1"], "Layers": [first, second]}]).encode()
    members = [(config_name, config), (first, layers[0]), (second, layers[1]), ("manifest.json", manifest)]
    path = tmp_path / "any.tar"
    with tarfile.open(path, "w") as tar:
        for index in order:
            name, data = members[index]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, _io.BytesIO(data))
    if packed:
        path.with_suffix(".gz").write_bytes(gz.compress(path.read_bytes()))
        path = path.with_suffix(".gz")
    archive = Archive(path)
    image = archive.images[0]
    assert [layer.compression for layer in image.layers] == ["none", "gzip"]
    assert verify(archive) == []


MEMBER_NAMES = st.sampled_from(["etc", "etc/x", "../x", "/abs", "a/../../b", "dev/null", "dev/sda", "usr/lib",
                                "lib", "lib/x", ".wh.etc", "etc/.wh..wh..opq", "ok"])
KIND = st.sampled_from(["file", "dir", "symlink", "hardlink", "char", "fifo"])
LINK = st.sampled_from(["/etc", "../../..", "usr/lib", "etc/x", "x", "../x", "/"])


def _hostile_layer(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = link
            if kind == "char":
                info.devmajor, info.devminor = (1, 3) if name == "dev/null" else (8, 0)
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    return buffer.getvalue()


@FUZZ
@given(layers=st.lists(st.lists(st.tuples(MEMBER_NAMES, KIND, LINK), max_size=8), min_size=1, max_size=3))
def test_every_climbing_name_and_device_is_named_and_file_and_pipe_agree(tmp_path, layers):
    """Whatever the layers hold: each absolute or climbing name and each device other than the standard
    ones is a violation naming its layer; reading from a pipe gives the same verdicts as from the file."""
    path = legacy_save(tmp_path / "h.tar", [_hostile_layer(items) for items in layers])
    archive = Archive(path)
    found = {(v.code, v.layer, v.member) for v in verify(archive)}
    for image in archive.images:
        for layer, items in zip(image.layers, layers):
            for name, kind, _ in items:
                if name.startswith("/") or ".." in name.split("/"):
                    assert any(c == "unsafe-name" and lay == layer.member for c, lay, _ in found)
                if kind == "fifo" or (kind == "char" and name != "dev/null"):
                    assert any(c == "device-node" and lay == layer.member for c, lay, _ in found)
    piped = through_pipe(tmp_path, path)
    assert {(v.code, v.layer, v.member) for v in verify(piped)} == found
