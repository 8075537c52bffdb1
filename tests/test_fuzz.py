"""Property-based fuzzing of the parsers: whatever the bytes, the reader answers or raises ArchiveError."""

from __future__ import annotations

import io
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


@FUZZ
@given(layers=st.lists(st.lists(st.tuples(PATHS, st.one_of(st.none(), st.binary(max_size=64))), max_size=12),
                       min_size=1, max_size=4))
def test_flatten_invariants_hold_for_any_layers(tmp_path, layers):
    """Whatever the layers, flattening keeps every byte accounted for and leaves no whiteout behind."""
    built = []
    for items in layers:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in items:
                info = tarfile.TarInfo(name or ".")
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        built.append(buffer.getvalue())
    try:
        archive = Archive(legacy_save(tmp_path / "f.tar", built))
    except ArchiveError:
        return
    flat = flatten(archive.images[0])
    assert not any(p.rsplit("/", 1)[-1].startswith(".wh.") for p in flat.files)
    applied = sum(layer.content_bytes for layer in archive.images[0].layers)
    assert flat.content_bytes + flat.shadowed_bytes == applied
