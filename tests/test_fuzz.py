"""Property-based fuzzing of the parsers: whatever the bytes, the reader answers or raises ArchiveError."""

from __future__ import annotations

import io
import posixpath
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tarmaker import layer_bytes, legacy_save, oci_save

from saveexport.archives import Archive, flatten, verify
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
