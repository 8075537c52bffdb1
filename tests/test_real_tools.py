"""Real archives from the real tools (umoci, skopeo, buildah, Podman), inspected, and compared with skopeo.

The tests build a small image of their own with umoci (an OCI layout in a temporary directory: two
layers, a symlink, a hard link, a whiteout), and make every archive from it with stores under the
same directory (`--root`/`--runroot`, the vfs driver), so nothing touches the machine's own stores.
With CI=true a missing tool fails these tests; elsewhere they skip. `scripts/engine tools` installs
the tools (as root on Debian).

Agreement with a peer: for each archive skopeo reads, `inspect --json` must report what
`skopeo inspect --raw` and `--config` report: the config digest, layer digests and sizes, diff_ids, and
for OCI archives the manifest digest (for a docker-archive skopeo makes its manifest up).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


TOOLS = ("umoci", "skopeo", "podman", "buildah")
AGREEMENT: list[dict] = []  # one row per archive skopeo read: printed by test_agreement_table


def need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (scripts/engine tools installs them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(argv: list[str], **kw) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.strip()[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-tools")


@pytest.fixture(scope="module")
def layout(work) -> Path:
    """A small image made with umoci: base (files, a symlink, a hard link), then a layer that removes a
    file (a whiteout), changes one and adds one."""
    need("umoci")
    root = work / "layout"
    run(["umoci", "init", "--layout", str(root)])
    run(["umoci", "new", "--image", f"{root}:small"])
    bundle = work / "bundle"
    run(["umoci", "unpack", "--image", f"{root}:small", str(bundle)])
    rootfs = bundle / "rootfs"
    for directory in ("bin", "etc", "usr/lib", "var/cache"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    (rootfs / "bin/sh").write_bytes(b"#!not really a shell\n" * 50)
    (rootfs / "etc/os-release").write_text("ID=saveexport-small\n")
    (rootfs / "var/cache/big").write_bytes(os.urandom(20_000))
    (rootfs / "usr/lib/libx.so.1").write_bytes(b"\x7fELF" + bytes(3000))
    os.symlink("libx.so.1", rootfs / "usr/lib/libx.so")
    os.link(rootfs / "bin/sh", rootfs / "bin/ash")
    run(["umoci", "repack", "--refresh-bundle", "--image", f"{root}:small", str(bundle)])
    (rootfs / "var/cache/big").unlink()
    (rootfs / "etc/os-release").write_text("ID=saveexport-small\nVERSION=2\n")
    (rootfs / "etc/motd").write_text("made by the tests\n")
    run(["umoci", "repack", "--image", f"{root}:small", str(bundle)])
    run(["umoci", "config", "--image", f"{root}:small", "--config.cmd", "/bin/sh"])
    return root


def skopeo(*args: str) -> str:
    return run(["skopeo", "--insecure-policy", *args])


def store(work: Path) -> list[str]:
    """Podman's and buildah's options for a store of the test's own (vfs, under the work directory)."""
    return ["--root", str(work / "store"), "--runroot", str(work / "run"), "--storage-driver", "vfs"]


def podman(work: Path, *args: str) -> str:
    return run(["podman", *store(work), "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args],
               env=dict(os.environ, TMPDIR=str(work)))


def buildah(work: Path, *args: str) -> str:
    return run(["buildah", *store(work), *args], env=dict(os.environ, TMPDIR=str(work), BUILDAH_ISOLATION="chroot"))


def inspect(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "saveexport.cli", "inspect", "--json", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr, proc.stdout[-3000:])
    return json.loads(proc.stdout)


def agree(path: Path, transport: str, writer: str, image: int = 0) -> dict:
    """Our reading of `path` against skopeo's; fails on any difference in what both report."""
    images = inspect(path)["images"]
    ours = images[image]
    reference = f"{transport}:{path}" + (f":@{image}" if len(images) > 1 else "")  # skopeo's index into manifest.json
    raw = skopeo("inspect", "--raw", reference)
    manifest = json.loads(raw)
    config = json.loads(skopeo("inspect", "--config", reference))
    row = {"archive": path.name, "writer": writer, "transport": transport, "layers": len(ours["layers"]),
           "config digest": manifest["config"]["digest"] == ours["id"],
           "layer digests": [d["digest"] for d in manifest["layers"]] == [layer["digest"] for layer in ours["layers"]],
           "layer sizes": [d["size"] for d in manifest["layers"]] == [layer["size"] for layer in ours["layers"]],
           "diff_ids": config["rootfs"]["diff_ids"] == [layer["diff_id"] for layer in ours["layers"]]
           == ours["diff_ids"]}
    if transport == "oci-archive":
        row["manifest digest"] = "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == ours["manifest_digest"]
    else:
        row["manifest digest"] = "not compared (skopeo makes one up)"
    AGREEMENT.append(row)
    assert all(value is True for key, value in row.items() if key not in ("archive", "writer", "transport", "layers",
                                                                           "manifest digest")), row
    assert row["manifest digest"] in (True, "not compared (skopeo makes one up)"), row
    return ours


@pytest.fixture(scope="module")
def umoci_tar(work, layout) -> Path:
    """umoci's layout as an oci-archive: tar of the directory, every name under ./"""
    path = work / "umoci.tar"
    run(["tar", "-C", str(layout), "-cf", str(path), "."])
    return path


def test_umoci_layout_tarred(umoci_tar):
    need("skopeo")
    ours = agree(umoci_tar, "oci-archive", "umoci 0.4 layout, tarred")
    assert len(ours["layers"]) == 2 and ours["layers"][1]["removed"] == 1


@pytest.mark.parametrize("target, args", [
    ("docker-archive", []), ("oci-archive", []), ("oci-archive", ["--dest-compress-format", "zstd"]),
    ("oci-archive", ["--dest-compress-format", "gzip"])], ids=["docker-archive", "oci-archive", "oci-zstd", "oci-gzip"])
def test_skopeo_archives(work, layout, target, args):
    need("skopeo")
    path = work / f"skopeo-{target}-{'-'.join(args[1:]) or 'plain'}.tar"
    name = "saveexport/small:1" if target == "docker-archive" else "small"
    skopeo("copy", *args, f"oci:{layout}:small", f"{target}:{path}:{name}")
    ours = agree(path, target, f"skopeo copy {' '.join(args)}".strip())
    if "zstd" in args:
        assert {layer["compression"] for layer in ours["layers"]} == {"zstd"}


@pytest.fixture(scope="module")
def podman_image(work, layout) -> str:
    need("podman")
    podman(work, "pull", "-q", f"oci:{layout}:small")
    return podman(work, "images", "-q", "--no-trunc").split()[0]


@pytest.fixture(scope="module")
def buildah_image(work) -> str:
    need("buildah")
    container = buildah(work, "from", "scratch").strip()
    payload = work / "app.txt"
    payload.write_text("from buildah\n")
    buildah(work, "copy", container, str(payload), "/srv/app.txt")
    buildah(work, "config", "--cmd", "/srv/app.txt", container)
    buildah(work, "commit", "-q", container, "localhost/saveexport-buildah:1")
    buildah(work, "rm", container)
    return "localhost/saveexport-buildah:1"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save(work, podman_image, fmt):
    need("skopeo")
    path = work / f"podman-{fmt}.tar"
    podman(work, "tag", podman_image, "localhost/saveexport-small:1")
    podman(work, "save", "--format", fmt, "-o", str(path), "localhost/saveexport-small:1")
    agree(path, fmt, f"podman save --format {fmt}")


def test_podman_save_of_two_images(work, podman_image, buildah_image):
    need("skopeo")
    path = work / "podman-multi.tar"
    podman(work, "tag", podman_image, "localhost/saveexport-small:1")
    podman(work, "save", "-m", "-o", str(path), "localhost/saveexport-small:1", buildah_image)
    summary = inspect(path)
    assert sorted(tag for image in summary["images"] for tag in image["tags"]) == \
        ["localhost/saveexport-buildah:1", "localhost/saveexport-small:1"]
    for index in range(2):
        agree(path, "docker-archive", "podman save -m (2 images)", image=index)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_buildah_push(work, buildah_image, fmt):
    need("skopeo")
    path = work / f"buildah-{fmt}.tar"
    buildah(work, "push", "-q", buildah_image, f"{fmt}:{path}:{'localhost/saveexport-buildah:1' if fmt == 'docker-archive' else 'one'}")
    agree(path, fmt, f"buildah push {fmt}:")


def test_podman_export_of_a_container_is_a_safe_root(work, podman_image):
    """What a real export holds (the entries a container root has), and no alarm about it."""
    podman(work, "create", "--name", "saveexport-small", "--network", "none", podman_image, "/bin/sh")
    path = work / "podman-export.tar"
    podman(work, "export", "-o", str(path), "saveexport-small")
    podman(work, "rm", "saveexport-small")
    summary = inspect(path)
    assert summary["layout"] == "rootfs" and summary["violations"] == []
    assert "etc/motd" in {line for line in _names(path)} and "var/cache/big" not in set(_names(path))


def test_the_subjects_save_and_export_raise_no_alarm(save_archive, export_archive):
    """No false alarm on real images: the engine's own save of the subject image and the export of its
    running container read as they are, exit 0 (on the engine this run has)."""
    save, export = inspect(save_archive.path), inspect(export_archive.path)
    assert save["violations"] == [] and export["violations"] == []
    assert export["layout"] == "rootfs" and len(save["images"]) == 1


def _names(path: Path) -> list[str]:
    import tarfile

    from saveexport.archives.entries import normalise

    with tarfile.open(path) as tar:
        return [normalise(name) for name in tar.getnames()]


def test_agreement_table(capsys):
    """Every archive compared agreed with skopeo; the table is printed (runs last in this module)."""
    if not AGREEMENT:
        pytest.skip("no archive was compared")
    keys = ["archive", "writer", "transport", "layers", "config digest", "layer digests", "layer sizes", "diff_ids",
            "manifest digest"]
    with capsys.disabled():
        print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for row in AGREEMENT:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    disagreeing = [row["archive"] for row in AGREEMENT if any(row[k] is False for k in keys[4:])]
    assert not disagreeing, disagreeing
