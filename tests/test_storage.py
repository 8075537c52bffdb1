"""Storage accounting on trees laid out as each engine lays out its store: a dockerd overlay2 data-root
(as moby's layer/filestore.go and image/fs.go write it, and as this machine's /var/lib/docker holds it),
Docker's containerd store (the daemon's own containerd under <data-root>/containerd/daemon) and a
containers/storage root as Podman's --root (layers.json, images.json, containers.json)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from saveexport import storage
from saveexport.storage import Census, Kept, Named, StorageError, Unnamed

# Docker 20.10.24's layer store on this machine, image saveexport-cache-saveexport-app (sha256:767cc6e0…):
# RootFS.Layers and the layerdb directories they are stored under (their `diff` files hold the diff ids)
REAL_DIFF_IDS = ["sha256:dada113ad949fe320ce0d3609e3f2ce1785d1a0dc8cca4159fd0181b29a385b7",
                 "sha256:d84b538807640f666ab2bfeb914fcdea6e650c1691530fdd03e57e05dfbe6ed1",
                 "sha256:785db66b1f3468a05ff1295ab48e3e814a84d326835bb0363709a35b05d0a442"]
REAL_CHAIN_IDS = ["sha256:dada113ad949fe320ce0d3609e3f2ce1785d1a0dc8cca4159fd0181b29a385b7",
                  "sha256:eeda6c57fe28daacefcfa4c905cb3b32ef0d25823cd94eafde413578149d7da3",
                  "sha256:9afb840d5c870eb559491dde52329d550564c01e47d1650be89c5baac0cae7bb"]


def hexid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def write(path: Path, data: bytes | str = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------- a dockerd overlay2 data-root


class Overlay2:
    """Writes what dockerd writes, one object at a time, so a test can plant what nothing names."""

    def __init__(self, root: Path):
        self.root = root
        self.image = root / "image" / "overlay2"
        (self.image / "layerdb" / "sha256").mkdir(parents=True)
        (self.image / "imagedb" / "content" / "sha256").mkdir(parents=True)
        (root / "overlay2" / "l").mkdir(parents=True)
        write(root / "volumes" / "metadata.db", b"bolt")

    def layer(self, chain: str, diff: str, parent: str = "", payload: bytes = b"x") -> str:
        cache = hexid("cache" + chain)
        record = self.image / "layerdb" / "sha256" / chain.split(":")[1]
        if record.exists():  # a layer another image has: stored once
            return cache
        write(record / "diff", diff)
        write(record / "cache-id", cache)
        write(record / "size", str(len(payload)))
        write(record / "tar-split.json.gz", b"\x1f\x8b")
        if parent:
            write(record / "parent", parent)
        self.driver_dir(cache, payload)
        return cache

    def driver_dir(self, cache: str, payload: bytes = b"x") -> None:
        home, link = self.root / "overlay2" / cache, hexid("link" + cache)[:26].upper()
        write(home / "diff" / "file", payload)
        write(home / "link", link)
        (home / "work").mkdir()
        (self.root / "overlay2" / "l" / link).symlink_to(f"../{cache}/diff")

    def image_config(self, diff_ids: list[str]) -> str:
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        image_id = hashlib.sha256(config).hexdigest()
        write(self.image / "imagedb" / "content" / "sha256" / image_id, config)
        write(self.image / "imagedb" / "metadata" / "sha256" / image_id / "lastUpdated", "2024")
        return image_id

    def container(self, top_chain: str) -> str:
        cid, mount = hexid("container" + top_chain), hexid("mount" + top_chain)
        record = self.image / "layerdb" / "mounts" / cid
        write(record / "mount-id", mount)
        write(record / "init-id", f"{mount}-init")
        write(record / "parent", top_chain)
        self.driver_dir(mount)
        self.driver_dir(f"{mount}-init")
        write(self.root / "containers" / cid / "config.v2.json", "{}")
        return cid

    def image_with(self, diff_ids: list[str]) -> tuple[str, list[str]]:
        chains = storage.chain_ids(diff_ids)
        for n, (chain, diff) in enumerate(zip(chains, diff_ids)):
            self.layer(chain, diff, parent=chains[n - 1] if n else "")
        return self.image_config(diff_ids), chains


@pytest.fixture
def overlay2(tmp_path):
    return Overlay2(tmp_path / "data")


def api_image(image_id: str, diff_ids: list[str]) -> dict:
    """docker-py's Image.attrs, the parts storage accounting reads."""
    return {"Id": f"sha256:{image_id}", "RootFS": {"Type": "layers", "Layers": diff_ids}}


# ---------------------------------------------------------------- chain ids


def test_chain_ids_are_the_layer_store_names_of_a_real_image():
    assert storage.chain_ids(REAL_DIFF_IDS) == REAL_CHAIN_IDS
    assert storage.chain_ids(REAL_DIFF_IDS[:1]) == REAL_CHAIN_IDS[:1]
    assert storage.chain_ids([d.split(":")[1] for d in REAL_DIFF_IDS]) == REAL_CHAIN_IDS
    assert storage.chain_ids([]) == []


def test_chain_ids_depend_on_the_order_of_layers():
    assert storage.chain_ids(REAL_DIFF_IDS[::-1])[-1] != REAL_CHAIN_IDS[-1]


# ---------------------------------------------------------------- overlay2


def test_overlay2_census_counts_every_kind_of_object(overlay2):
    diffs = REAL_DIFF_IDS[:2]
    image_id, chains = overlay2.image_with(diffs)
    cid = overlay2.container(chains[-1])
    write(overlay2.root / "volumes" / "vol1" / "_data" / "f", "v")
    write(overlay2.root / "tmp" / "docker-import-123" / "bin" / "json", "{}")
    found = storage.census(overlay2.root, "overlay2")
    assert found.measured and found.error == ""
    assert found.objects["layer"] == {c.split(":")[1] for c in chains}
    assert found.objects["rw-layer"] == {cid}
    assert found.objects["container"] == {cid}
    assert found.objects["image-config"] == {image_id}
    assert found.objects["volume"] == {"vol1"}  # metadata.db is the volume store's, not a volume
    assert found.objects["tmp"] == {"tmp/docker-import-123"}
    mount = hexid("mount" + chains[-1])
    assert "l" not in found.objects["driver-dir"]
    assert found.objects["driver-dir"] == {hexid("cache" + c) for c in chains} | {mount, f"{mount}-init"}
    assert found.counts() == {"container": 1, "driver-dir": 4, "image-config": 1, "layer": 2, "rw-layer": 1,
                              "tmp": 1, "volume": 1}
    # what holds what comes from the store's own one-line records
    assert found.holds[("layer", chains[1].split(":")[1])] == {("driver-dir", hexid("cache" + chains[1])),
                                                              ("layer", chains[0].split(":")[1])}
    assert found.holds[("rw-layer", cid)] == {("driver-dir", mount), ("driver-dir", f"{mount}-init"),
                                              ("layer", chains[1].split(":")[1])}


def test_an_empty_data_root_of_a_fresh_daemon_counts_nothing(tmp_path):
    (tmp_path / "image" / "overlay2").mkdir(parents=True)
    found = storage.census(tmp_path, "overlay2")
    assert found.measured and found.total() == 0


def test_vfs_keeps_its_layer_directories_in_dir(tmp_path):
    (tmp_path / "image" / "vfs" / "layerdb" / "sha256" / hexid("a")).mkdir(parents=True)
    (tmp_path / "vfs" / "dir" / hexid("cache-a")).mkdir(parents=True)
    found = storage.census(tmp_path, "vfs")
    assert found.objects["driver-dir"] == {hexid("cache-a")}
    assert storage.object_paths(tmp_path, "vfs", "driver-dir", "x") == [tmp_path / "vfs" / "dir" / "x"]


def test_kept_is_what_appeared_between_two_censuses(overlay2):
    base_id, base_chains = overlay2.image_with(REAL_DIFF_IDS[:1])
    before = storage.census(overlay2.root, "overlay2")
    image_id, chains = overlay2.image_with(REAL_DIFF_IDS[:2])
    cid = overlay2.container(chains[-1])
    after = storage.census(overlay2.root, "overlay2")
    new = storage.kept(before, after)
    assert isinstance(new, Kept) and new.measured
    assert new.objects["layer"] == {chains[1].split(":")[1]}  # the base layer was there before
    assert new.objects["image-config"] == {image_id}
    assert new.objects["container"] == new.objects["rw-layer"] == {cid}
    assert base_id not in new.objects["image-config"]
    assert storage.kept(after, after).total() == 0
    assert storage.kept(after, before).total() == 0  # removals are not kept storage


def test_kept_of_an_unmeasured_census_says_why(overlay2, tmp_path):
    good = storage.census(overlay2.root, "overlay2")
    missing = storage.census(tmp_path / "nowhere", "overlay2")
    new = storage.kept(good, missing)
    assert not new.measured and new.error.startswith("after: ") and "does not exist" in new.error
    assert storage.kept(missing, good).error.startswith("before: ")
    other = storage.kept(good, storage.census(overlay2.root, "vfs"))
    assert not other.measured
    assert "two stores" in storage.kept(good, Census(store="vfs", root=good.root)).error


def test_unnamed_finds_what_nothing_names_and_only_that(overlay2):
    image_id, chains = overlay2.image_with(REAL_DIFF_IDS)
    cid = overlay2.container(chains[-1])
    # planted: a layer record with its driver dir, a driver dir without record, an image config
    orphan_chain = hexid("orphan layer")
    orphan_cache = overlay2.layer(f"sha256:{orphan_chain}", f"sha256:{hexid('orphan diff')}")
    overlay2.driver_dir(hexid("stray dir"))
    orphan_image = overlay2.image_config([f"sha256:{hexid('other diff')}"])
    write(overlay2.root / "tmp" / "docker-import-9" / "x", "y")
    write(overlay2.root / "volumes" / "anon" / "_data" / "PG_VERSION", "13")
    found = storage.census(overlay2.root, "overlay2")

    named = Named.from_api([api_image(image_id, REAL_DIFF_IDS)], [{"Id": cid}], [{"Name": "named-volume"}])
    left = storage.unnamed(found, named)
    assert isinstance(left, Unnamed) and left.measured and left.unjudged == {}
    assert left.objects["layer"] == {orphan_chain}
    assert left.objects["driver-dir"] == {orphan_cache, hexid("stray dir")}
    assert left.objects["image-config"] == {orphan_image}
    assert left.objects["tmp"] == {"tmp/docker-import-9"}
    assert left.objects["volume"] == {"anon"}
    assert left.objects["container"] == left.objects["rw-layer"] == frozenset()
    assert image_id not in left.objects["image-config"]
    assert not {c.split(":")[1] for c in chains} & left.objects["layer"]


def test_unnamed_after_the_image_and_container_are_gone_from_the_api(overlay2):
    image_id, chains = overlay2.image_with(REAL_DIFF_IDS[:2])
    cid = overlay2.container(chains[-1])
    found = storage.census(overlay2.root, "overlay2")
    left = storage.unnamed(found, Named())
    assert left.objects["layer"] == {c.split(":")[1] for c in chains}
    assert left.objects["rw-layer"] == left.objects["container"] == {cid}
    assert left.objects["driver-dir"] == found.objects["driver-dir"]
    # the container still named: its read-write layer holds the image's layers and their directories
    held = storage.unnamed(found, Named(containers=frozenset({cid})))
    assert held.objects["layer"] == held.objects["driver-dir"] == frozenset()
    assert held.objects["image-config"] == {image_id}


# ---------------------------------------------------------------- Docker's containerd store


class ContainerdStore:
    """A dockerd data-root with the containerd snapshotter: content, ingest, snapshots, bolt databases."""

    def __init__(self, data_root: Path):
        self.data_root = data_root
        self.ctd = data_root / "containerd" / "daemon"
        self.content = self.ctd / "io.containerd.content.v1.content"
        self.snapshots = self.ctd / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
        (self.content / "ingest").mkdir(parents=True)
        self.snapshots.mkdir(parents=True)
        write(self.ctd / "io.containerd.metadata.v1.bolt" / "meta.db", b"bolt")
        write(self.snapshots.parent / "metadata.db", b"bolt")

    def blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        write(self.content / "blobs" / "sha256" / digest, data)
        return digest

    def image(self, seed: str) -> tuple[str, set[str]]:
        """An index → manifest → config + two layers, as `docker build` leaves them; returns the image id."""
        layers = [self.blob(b"\x1f\x8b layer " + f"{seed}{n}".encode()) for n in range(2)]
        config = self.blob(json.dumps({"seed": seed, "rootfs": {"diff_ids": []}}).encode())
        manifest = self.blob(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": f"sha256:{config}", "size": 1},
            "layers": [{"digest": f"sha256:{layer}", "size": 1} for layer in layers]}).encode())
        index = self.blob(json.dumps({"schemaVersion": 2, "manifests": [{"digest": f"sha256:{manifest}"}]}).encode())
        return index, {index, manifest, config, *layers}


@pytest.fixture
def containerd(tmp_path):
    return ContainerdStore(tmp_path / "data")


def test_containerd_census_reads_the_daemons_own_containerd(containerd):
    index, blobs = containerd.image("a")
    for n in ("1", "2"):
        write(containerd.snapshots / n / "fs" / "f", "x")
    (containerd.content / "ingest" / hexid("ref")).mkdir()
    write(containerd.data_root / "containers" / hexid("c") / "config.v2.json", "{}")
    found = storage.census(containerd.data_root, "containerd")
    assert found.measured
    assert found.objects["content-blob"] == blobs
    assert found.objects["snapshot"] == {"overlayfs/1", "overlayfs/2"}
    assert found.objects["ingest"] == {hexid("ref")}
    assert found.objects["metadata-db"] == {"io.containerd.metadata.v1.bolt/meta.db",
                                            "io.containerd.snapshotter.v1.overlayfs/metadata.db"}
    assert found.objects["container"] == {hexid("c")}


def test_containerd_unnamed_follows_index_manifest_and_config(containerd):
    index, blobs = containerd.image("a")
    gone_index, gone_blobs = containerd.image("b")
    stray = containerd.blob(b"a blob nothing references")
    (containerd.content / "ingest" / hexid("half")).mkdir()
    write(containerd.snapshots / "7" / "fs" / "f", "x")
    found = storage.census(containerd.data_root, "containerd")
    left = storage.unnamed(found, Named.from_api([{"Id": f"sha256:{index}", "RootFS": {"Layers": []}}]))
    assert left.objects["content-blob"] == gone_blobs | {stray}
    assert not blobs & left.objects["content-blob"]
    assert left.objects["ingest"] == {hexid("half")}
    assert "metadata-db" not in left.objects  # the store's bookkeeping, never a leftover
    assert "snapshot" not in left.objects and "bolt" in left.unjudged["snapshot"]
    # digests the plugin names itself count too
    also = storage.unnamed(found, Named(images=frozenset({index}), content=frozenset({gone_index})))
    assert also.objects["content-blob"] == {stray}


def test_containerd_census_without_a_managed_containerd_says_why(overlay2, tmp_path):
    found = storage.census(overlay2.root, "containerd")
    assert not found.measured and "system containerd" in found.error and "\n" not in found.error
    # a containerd root itself is read as one
    write(tmp_path / "ctd" / "io.containerd.content.v1.content" / "blobs" / "sha256" / hexid("b"), "b")
    assert storage.census(tmp_path / "ctd", "containerd").objects["content-blob"] == {hexid("b")}


# ---------------------------------------------------------------- Podman


class PodmanStore:
    """A containers/storage graph root with the overlay driver, as `podman --root` keeps it."""

    def __init__(self, root: Path, driver: str = "overlay"):
        self.root, self.driver = root, driver
        self.layers: list[dict] = []
        self.images: list[dict] = []
        self.containers: list[dict] = []
        for part in ("layers", "images", "containers"):
            (root / f"{driver}-{part}").mkdir(parents=True)
        (root / driver / "l").mkdir(parents=True)
        self.save()

    def save(self) -> None:
        for part, records in (("layers", self.layers), ("images", self.images), ("containers", self.containers)):
            write(self.root / f"{self.driver}-{part}" / f"{part}.json", json.dumps(records))

    def layer(self, seed: str, parent: str = "") -> str:
        layer_id = hexid("layer" + seed)
        record = {"id": layer_id, "diff-digest": f"sha256:{hexid('diff' + seed)}", "diff-size": 1}
        if parent:
            record["parent"] = parent
        self.layers.append(record)
        write(self.root / self.driver / layer_id / "diff" / "f", seed)
        write(self.root / f"{self.driver}-layers" / f"{layer_id}.tar-split.gz", b"\x1f\x8b")
        self.save()
        return layer_id

    def image(self, seed: str) -> tuple[str, list[str]]:
        base = self.layer(seed + "0")
        top = self.layer(seed + "1", parent=base)
        image_id = hexid("image" + seed)
        self.images.append({"id": image_id, "names": [f"localhost/{seed}:latest"], "layer": top,
                            "digest": f"sha256:{hexid('manifest' + seed)}"})
        write(self.root / f"{self.driver}-images" / image_id / "manifest", "{}")
        self.save()
        return image_id, [base, top]

    def container(self, image_id: str, top: str) -> tuple[str, str]:
        cid = hexid("container" + image_id)
        rw = self.layer("rw" + cid, parent=top)
        self.containers.append({"id": cid, "names": ["c"], "image": image_id, "layer": rw})
        write(self.root / f"{self.driver}-containers" / cid / "userdata" / "config.json", "{}")
        self.save()
        return cid, rw


@pytest.fixture
def podman(tmp_path):
    return PodmanStore(tmp_path / "storage")


def test_podman_census_reads_the_stores_records(podman):
    image_id, layers = podman.image("a")
    cid, rw = podman.container(image_id, layers[-1])
    found = storage.census(podman.root, "podman")
    assert found.store == "podman:overlay" and found.measured
    assert found.objects["layer"] == {*layers, rw}
    assert found.objects["image-config"] == {image_id}
    assert found.objects["container"] == {cid}
    assert found.objects["driver-dir"] == {*layers, rw}  # overlay/l is not a layer
    assert found.objects["image-data"] == {image_id}
    assert found.objects["container-data"] == {cid}
    assert found.holds[("image-config", image_id)] == {("layer", layers[-1]), ("image-data", image_id)}
    assert found.holds[("container", cid)] == {("layer", rw), ("container-data", cid)}


def test_podman_mapped_layers_are_held_by_their_image(podman):
    """An image's copies of its top layer for other ID mappings (containers/storage "mapped-layers")."""
    image_id, layers = podman.image("a")
    mapped = podman.layer("mapped", parent=layers[0])
    podman.images[0]["mapped-layers"] = [mapped]
    podman.save()
    left = storage.unnamed(storage.census(podman.root, "podman"), Named(images=frozenset({image_id})))
    assert left.objects["layer"] == frozenset()


def test_podman_volatile_containers_are_counted_too(podman):
    write(podman.root / "overlay-containers" / "volatile-containers.json", json.dumps([{"id": "v1", "layer": "l1"}]))
    assert storage.census(podman.root, "podman").objects["container"] == {"v1"}


def test_podman_unnamed_walks_from_images_and_containers(podman):
    image_id, layers = podman.image("a")
    cid, rw = podman.container(image_id, layers[-1])
    gone_image, gone_layers = podman.image("b")
    stray_layer = podman.layer("stray")
    (podman.root / "overlay" / hexid("no record")).mkdir()
    found = storage.census(podman.root, "podman")
    left = storage.unnamed(found, Named.from_api([{"Id": f"sha256:{image_id}"}], [{"Id": cid}]))
    assert left.objects["layer"] == {*gone_layers, stray_layer}
    assert left.objects["driver-dir"] == {*gone_layers, stray_layer, hexid("no record")}
    assert left.objects["image-config"] == left.objects["image-data"] == {gone_image}
    assert left.objects["container"] == left.objects["container-data"] == frozenset()
    paths = storage.object_paths(podman.root, found.store, "layer", stray_layer)
    assert paths == [podman.root / "overlay-layers" / f"{stray_layer}.tar-split.gz"] and paths[0].exists()


def test_podman_deletion_staging_area_is_bookkeeping_and_an_unfinished_deletion_is_kept(podman):
    """containers/storage 5.6+ stages deletions in overlay/tempdirs and leaves the empty directory: that is
    the store's, not a layer; a temp-dir-<id> or lock-<id> left in it is a deletion that never finished."""
    image_id, layers = podman.image("a")
    before = storage.census(podman.root, "podman")
    (podman.root / "overlay" / "tempdirs").mkdir()
    after_clean = storage.census(podman.root, "podman")
    assert after_clean.objects["driver-dir"] == set(layers)
    assert after_clean.objects["staging-area"] == {"overlay/tempdirs"}
    assert not any(n for kind, n in storage.kept(before, after_clean).counts().items()
                   if kind not in storage.BOOKKEEPING)
    write(podman.root / "overlay" / "tempdirs" / "temp-dir-77" / "0-" / "diff" / "f", "x" * 10)
    write(podman.root / "overlay" / "tempdirs" / "lock-77")
    write(podman.root / "overlay" / "tempdirs" / "lock-78")
    after_stuck = storage.census(podman.root, "podman")
    assert after_stuck.objects["staged-deletion"] == {"overlay/tempdirs/77", "overlay/tempdirs/78"}
    kept = storage.kept(before, after_stuck)
    assert kept.counts()["staged-deletion"] == 2
    paths = storage.object_paths(podman.root, after_stuck.store, "staged-deletion", "overlay/tempdirs/77")
    assert sorted(p.name for p in paths) == ["lock-77", "temp-dir-77"]
    assert storage.measure(podman.root, kept)["staged-deletion"] == 10


def test_podman_image_copies_left_in_its_tmp_are_kept_with_their_bytes(podman):
    """A Podman whose image copies are staged in <graph root>/tmp (the plugin's services): an archive the
    compat API's import wrote there and never removed is unnamed, kept, and counted in bytes."""
    image_id, _ = podman.image("a")
    before = storage.census(podman.root, "podman")
    write(podman.root / "tmp" / "api_load.tar123", "x" * 300)
    after = storage.census(podman.root, "podman")
    assert after.objects["tmp"] == {"tmp/api_load.tar123"}
    kept = storage.kept(before, after)
    assert kept.counts()["tmp"] == 1
    assert storage.unnamed(after, Named(images=frozenset({image_id}))).objects["tmp"] == {"tmp/api_load.tar123"}
    assert storage.measure(podman.root, kept)["tmp"] == 300


def test_a_podmans_image_copy_directory_outside_its_store_counts_only_its_compat_bodies(podman, tmp_path):
    """A Podman the plugin did not start stages copies in the machine's /var/tmp: of that directory, only the
    bodies its compat API was sent (api_load.tar…) are its tmp, by full path; the store's own tmp/ is
    counted once when the directory is that one."""
    copies = tmp_path / "var-tmp"
    write(copies / "unrelated.tmp", "y" * 50)
    podman.image("a")
    before = storage.census(podman.root, "podman", copies)
    write(copies / "api_load.tar987", "x" * 400)
    after = storage.census(podman.root, "podman", copies)
    body = str(copies / "api_load.tar987")
    assert after.objects["tmp"] == {body}
    kept = storage.kept(before, after)
    assert storage.object_paths(podman.root, after.store, "tmp", body) == [copies / "api_load.tar987"]
    assert storage.measure(podman.root, kept)["tmp"] == 400
    write(podman.root / "tmp" / "api_load.tar5", "z")
    assert storage.census(podman.root, "podman", podman.root / "tmp").objects["tmp"] == {"tmp/api_load.tar5"}
    assert storage.census(podman.root, "podman", tmp_path / "missing").objects["tmp"] == {"tmp/api_load.tar5"}


def test_podman_with_vfs(tmp_path):
    store = PodmanStore(tmp_path / "storage", driver="vfs")
    (tmp_path / "storage" / "vfs" / "dir").mkdir()
    store.layer("a")
    layer_id = hexid("layera")
    os.rename(tmp_path / "storage" / "vfs" / layer_id, tmp_path / "storage" / "vfs" / "dir" / layer_id)
    found = storage.census(tmp_path / "storage", "podman")
    assert found.store == "podman:vfs" and found.objects["driver-dir"] == {layer_id}


def test_podman_records_that_are_not_json_say_so_in_one_line(podman):
    write(podman.root / "overlay-layers" / "layers.json", "[{broken")
    found = storage.census(podman.root, "podman")
    assert not found.measured and "layers.json is not JSON" in found.error and "\n" not in found.error
    write(podman.root / "overlay-layers" / "layers.json", '{"id": "x"}')
    assert "not a list" in storage.census(podman.root, "podman").error


def test_damaged_records_name_nothing_and_raise_nothing(podman, containerd):
    podman.layers.append({"id": "bad", "parent": {"not": "a string"}})
    podman.images.append({"id": "img", "layer": 7, "mapped-layers": "x"})
    podman.containers.append({"id": "c", "layer": None})
    podman.save()
    found = storage.census(podman.root, "podman")
    assert found.measured and found.objects["layer"] == {"bad"}
    named = Named(images=frozenset({"img"}), containers=frozenset({"c"}))
    assert storage.unnamed(found, named).objects["layer"] == {"bad"}
    write(podman.root / "overlay-images" / "images.json", b"\xff\xfe")
    assert "images.json is not JSON" in storage.census(podman.root, "podman").error
    containerd.blob(json.dumps({"manifests": [{"digest": 5}], "layers": "x", "config": []}).encode())
    assert storage.census(containerd.data_root, "containerd").measured


# ---------------------------------------------------------------- roots that cannot be read


@pytest.mark.parametrize("store", ["overlay2", "containerd", "podman", "vfs"])
def test_a_missing_root_is_a_census_that_says_so(tmp_path, store):
    found = storage.census(tmp_path / "not-there", store)
    assert not found.measured and found.total() == 0
    assert "does not exist" in found.error and str(tmp_path / "not-there") in found.error
    assert "\n" not in found.error
    assert storage.unnamed(found, Named()).error == found.error
    assert storage.measure(tmp_path, storage.kept(found, found)) == {}


@pytest.mark.parametrize("store", ["overlay2", "containerd", "podman"])
def test_a_file_where_the_root_should_be(tmp_path, store):
    write(tmp_path / "root", "a file")
    found = storage.census(tmp_path / "root", store)
    assert not found.measured and "is not a directory" in found.error


def test_a_file_where_a_store_directory_should_be(overlay2, containerd, podman):
    sha256 = overlay2.image / "layerdb" / "sha256"
    sha256.rmdir()
    write(sha256, "not a directory")
    found = storage.census(overlay2.root, "overlay2")
    assert not found.measured and found.error == f"{sha256} is not a directory"

    snapshots = containerd.snapshots
    snapshots.rmdir()
    write(snapshots, "x")
    assert storage.census(containerd.data_root, "containerd").error == f"{snapshots} is not a directory"

    driver = podman.root / "overlay"
    subprocess.run(["rm", "-r", str(driver)], check=True)
    write(driver, "x")
    assert storage.census(podman.root, "podman").error == f"{driver} is not a directory"


def test_a_data_root_of_another_driver_is_not_measured(overlay2):
    found = storage.census(overlay2.root, "fuse-overlayfs")
    assert not found.measured and "image/fuse-overlayfs" in found.error


# ---------------------------------------------------------------- bytes


def test_measure_counts_a_hardlinked_file_once_and_follows_no_symlink(overlay2, tmp_path):
    before = storage.census(overlay2.root, "overlay2")
    chain = f"sha256:{hexid('big')}"
    cache = overlay2.layer(chain, f"sha256:{hexid('big diff')}", payload=b"a" * 1000)
    diff = overlay2.root / "overlay2" / cache / "diff"
    os.link(diff / "file", diff / "hardlink")  # the same 1000 bytes again
    outside = write(tmp_path / "outside" / "huge", b"b" * 100_000)
    (diff / "to-outside").symlink_to(outside)
    (diff / "to-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    new = storage.kept(before, storage.census(overlay2.root, "overlay2"))
    sizes = storage.measure(overlay2.root, new)
    link_bytes = len(str(outside)) + len(str(tmp_path / "outside"))
    expected_dir = 1000 + 26 + link_bytes
    assert sizes["driver-dir"] == expected_dir
    record = overlay2.image / "layerdb" / "sha256" / chain.split(":")[1]
    assert sizes["layer"] == sum(p.stat().st_size for p in record.iterdir())
    # the l/ short link belongs to no object; what the census did not keep is not walked
    assert set(sizes) == {"driver-dir", "layer"}


def test_measure_counts_a_file_shared_by_two_objects_once(overlay2):
    before = storage.census(overlay2.root, "overlay2")
    a = overlay2.layer(f"sha256:{hexid('a')}", "sha256:" + hexid("da"), payload=b"z" * 500)
    b = overlay2.layer(f"sha256:{hexid('b')}", "sha256:" + hexid("db"), payload=b"")
    shared = overlay2.root / "overlay2" / b / "diff" / "file"
    shared.unlink()
    os.link(overlay2.root / "overlay2" / a / "diff" / "file", shared)
    sizes = storage.measure(overlay2.root, storage.kept(before, storage.census(overlay2.root, "overlay2")))
    assert sizes["driver-dir"] == 500 + 2 * 26


def test_measure_of_an_object_gone_since_the_census_is_nothing(overlay2):
    gone = Kept(store="overlay2", root=str(overlay2.root), objects={"driver-dir": frozenset({"gone"})})
    assert storage.measure(overlay2.root, gone) == {"driver-dir": 0}


def test_measure_does_not_walk_into_a_mount(overlay2, tmp_path):
    """A running container's merged root is a mount of its lower layers: counting it counts them twice."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    before = storage.census(overlay2.root, "overlay2")
    cache = overlay2.layer(f"sha256:{hexid('m')}", "sha256:" + hexid("dm"), payload=b"q" * 10)
    merged = overlay2.root / "overlay2" / cache / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(merged)], check=True)
    try:
        write(merged / "lower-file", b"w" * 4000)
        sizes = storage.measure(overlay2.root, storage.kept(before, storage.census(overlay2.root, "overlay2")))
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert sizes["driver-dir"] == 10 + 26


def test_measure_containerd_and_podman_objects(containerd, podman):
    before = storage.census(containerd.data_root, "containerd")
    index, blobs = containerd.image("a")
    write(containerd.snapshots / "3" / "fs" / "f", b"s" * 300)
    sizes = storage.measure(containerd.data_root, storage.kept(before, storage.census(containerd.data_root,
                                                                                     "containerd")))
    blob_dir = containerd.content / "blobs" / "sha256"
    assert sizes == {"content-blob": sum((blob_dir / b).stat().st_size for b in blobs), "snapshot": 300}

    before = storage.census(podman.root, "podman")
    image_id, layers = podman.image("p")
    sizes = storage.measure(podman.root, storage.kept(before, storage.census(podman.root, "podman")))
    assert sizes == {"driver-dir": len("p0") + len("p1"), "image-data": 2, "layer": 4, "image-config": 0}


# ---------------------------------------------------------------- the evidence file


def test_everything_round_trips_through_plain_json(overlay2):
    image_id, chains = overlay2.image_with(REAL_DIFF_IDS[:2])
    overlay2.container(chains[-1])
    found = storage.census(overlay2.root, "overlay2")
    empty = Census(store="overlay2", root=str(overlay2.root))
    records = [found, storage.kept(empty, found), storage.unnamed(found, Named()),
               storage.census(overlay2.root / "nowhere", "overlay2"),
               Unnamed(store="containerd", root="/x", unjudged={"snapshot": "why"})]
    for record in records:
        data = json.loads(json.dumps(record.to_dict()))
        assert data["format"] == storage.FORMAT and data["version"] == storage.FORMAT_VERSION
        assert type(record).from_dict(data) == record


def test_a_record_of_another_format_or_kind_is_refused(overlay2):
    data = storage.census(overlay2.root, "overlay2").to_dict()
    with pytest.raises(StorageError, match="version 99"):
        Census.from_dict({**data, "version": 99})
    with pytest.raises(StorageError, match="not a kept"):
        Kept.from_dict(data)


def test_named_from_docker_py_attrs():
    named = Named.from_api([api_image("ab" * 32, REAL_DIFF_IDS)], [{"Id": "cd" * 32}], [{"Name": "v"}],
                           content=["sha256:" + "ef" * 32])
    assert named.images == {"ab" * 32} and named.containers == {"cd" * 32}
    assert named.chains == {c.split(":")[1] for c in REAL_CHAIN_IDS}
    assert named.content == {"ef" * 32} and named.volumes == {"v"}
    assert Named.from_api([{"Id": "sha256:" + "ab" * 32, "RootFS": None}]).chains == frozenset()
