"""The lean ustar walk must read exactly what tarfile reads, or hand the layer to tarfile."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from tarmaker import layer_bytes, legacy_save

from saveexport.archives import Archive, ustar
from saveexport.errors import ArchiveError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEGMENT = st.one_of(st.sampled_from(["usr", "bin", "a b", ".wh.x", "é", "x" * 60]),
                    st.text(st.characters(codec="utf-8", exclude_characters="\0/"), min_size=1, max_size=12))
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                         tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.AREGTYPE])
MEMBER = st.tuples(st.lists(SEGMENT, min_size=1, max_size=4).map("/".join), KINDS,
                   st.integers(0, 0o7777), st.integers(0, 70_000), st.binary(max_size=1500))


def _tar(members, fmt) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, kind, mode, owner, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, owner, owner // 2, 1_700_000_000
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = name[::-1]
            if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _walk(path) -> tuple[list[tuple], int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        walk = ustar.Headers(fd, 0, os.fstat(fd).st_size)
        return [tuple(header) for header in walk], walk.end
    finally:
        os.close(fd)


def _tarfile(path) -> tuple[list[tuple], int]:
    with tarfile.open(path, "r:") as tar:
        members = [(m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname, m.offset_data, m.devmajor, m.devminor)
                   for m in tar]
        return members, tar.offset


@FUZZ
@given(members=st.lists(MEMBER, min_size=1, max_size=8),
       fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_the_lean_walk_reads_what_tarfile_reads(tmp_path, members, fmt):
    try:
        data = _tar(members, fmt)
    except ValueError:  # a name or number USTAR cannot hold
        assume(False)
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    try:
        walked = _walk(path)
    except ustar.Unusual:
        # Only extended headers or base-256 numbers may send a layer to tarfile; a plain ustar one never.
        assert fmt != tarfile.USTAR_FORMAT
        event("left to tarfile")
        return
    event("read by the lean walk")
    assert walked == _tarfile(path)


def test_plain_layers_take_the_lean_walk(tmp_path):
    """Engines write plain ustar headers; if the walk refused them inspect would silently be slow again."""
    path = tmp_path / "layer.tar"
    members = [("usr", tarfile.DIRTYPE, 0o755, 0, b""), ("usr/bin/sh", tarfile.REGTYPE, 0o755, 0, b"#!" * 300),
               ("usr/bin/ash", tarfile.SYMTYPE, 0o777, 0, b""), ("usr/bin/.wh.old", tarfile.REGTYPE, 0o600, 0, b""),
               ("dev/null", tarfile.CHRTYPE, 0o666, 0, b""), ("usr/lib/" + "l" * 60 + "/" + "m" * 60, tarfile.REGTYPE, 0o644, 999, b"x")]
    path.write_bytes(_tar(members, tarfile.USTAR_FORMAT))
    walked, end = _walk(path)
    assert (walked, end) == _tarfile(path)
    assert len(walked) == 6 and walked[-1][0] == "usr/lib/" + "l" * 60 + "/" + "m" * 60  # a long name split into prefix/name


@pytest.mark.parametrize("mangle, why", [
    (lambda h: h[:156] + b"L" + h[157:], "a GNU long-name header"),
    (lambda h: h[:156] + b"x" + h[157:], "a pax header"),
    (lambda h: h[:108] + b"\x80" + bytes(6) + b"\x01" + h[116:], "a base-256 uid"),
    (lambda h: h[:124] + b"-0000000001\0" + h[136:], "a signed size"),
    (lambda h: h[:148] + b"0000000\0" + h[156:], "a bad checksum"),
    (lambda h: h[:300], "a short header"),
])
def test_odd_headers_are_left_to_tarfile(tmp_path, mangle, why):
    header = layer_bytes([("etc/hostname", b"box\n")])[:512]
    header = mangle(header)
    if why != "a bad checksum" and len(header) == 512:
        header = _with_checksum(header)
    path = tmp_path / "odd.tar"
    path.write_bytes(header + bytes(1024))
    with pytest.raises(ustar.Unusual):
        _walk(path)


def test_a_v7_directory_and_blank_numbers_read_as_tarfile_reads_them(tmp_path):
    header = bytearray(layer_bytes([("etc/hostname", b"")])[:512])
    header[0:100] = b"etc/".ljust(100, b"\0")
    header[156:157] = b"\0"  # AREGTYPE with a trailing slash: a directory to tarfile
    header[329:345] = b" " * 16  # blank device numbers: 0 to tarfile
    path = tmp_path / "v7.tar"
    path.write_bytes(_with_checksum(bytes(header)) + bytes(1024))
    walked = _walk(path)
    assert walked == _tarfile(path)
    assert walked[0][0][:2] == ("etc", tarfile.DIRTYPE)


def _with_checksum(header: bytes) -> bytes:
    blank = header[:148] + b" " * 8 + header[156:]
    return blank[:148] + b"%06o\0 " % sum(blank) + blank[156:]


def _outcome(path):
    try:
        archive = Archive(path)
    except ArchiveError as exc:
        return str(exc)
    return [(layer.member, layer.entries, layer.diff_id) for layer in archive.layers.values()]


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.floats(0.3, 1)))
def test_a_damaged_layer_gets_the_same_answer_with_or_without_the_lean_walk(tmp_path, flips, cut, monkeypatch):
    layer = bytearray(layer_bytes([("bin/",), ("bin/sh", b"#!" * 400), ("bin/ls", "->", "sh"), ("etc/.wh.x", b""),
                                   ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]))
    for where, value in flips:
        layer[int(where * len(layer))] = value
    if cut is not None:
        layer = layer[: int(cut * len(layer))]
    path = legacy_save(tmp_path / "damaged.tar", [bytes(layer)])
    lean = _outcome(path)
    event("an error" if isinstance(lean, str) else "entries")
    with monkeypatch.context() as patch:
        patch.setattr(ustar.Headers, "__iter__", _refuse)
        assert _outcome(path) == lean


def _refuse(self):
    raise ustar.Unusual("the test sends every layer to tarfile")
    yield  # pragma: no cover - makes this a generator like the real walk
