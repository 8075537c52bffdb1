"""What an engine keeps in its storage, counted from its own directories.

The image list and `docker system df` show what the engine still names; layers, read-write layers,
content blobs or snapshots it no longer names are visible only in its storage. A census lists that
storage (directory listings, plus the few tiny files that say which directory belongs to which
layer); `kept` compares two censuses, `unnamed` finds what nothing the API names holds, and
`measure` walks only the objects worth a byte count. Nothing here starts, asks or changes an engine.

Layouts (as the engines write them):
- a dockerd graphdriver (overlay2, vfs, fuse-overlayfs…), its data-root: moby `layer/filestore.go`
  (`image/<driver>/layerdb/sha256/<chain id>` with `cache-id`, `parent`; `layerdb/mounts/<container
  id>` with `mount-id`, `init-id`), `image/fs.go` (`imagedb/content/sha256`, `imagedb/metadata/sha256`),
  the driver's directories (`<driver>/<cache id>`, overlay2's short links in `<driver>/l`; vfs keeps
  them in `vfs/dir`), `containers/<id>`, `volumes/<name>`, `tmp/`;
- Docker's containerd image store: the daemon's own containerd under `<data-root>/containerd/daemon`
  (moby `cmd/dockerd` starts it with root `<data-root>/containerd`, `libcontainerd/supervisor` adds
  `daemon`); containerd's `io.containerd.content.v1.content/blobs/sha256/<hex>` and `ingest/`,
  `io.containerd.snapshotter.v1.<name>/snapshots/<n>`, metadata in bolt databases;
- Podman (containers/storage, `--root`): `<driver>-layers/layers.json` (records with "id", "parent"),
  `<driver>-images/images.json` ("id", top layer in "layer", "mapped-layers"),
  `<driver>-containers/containers.json` ("id", "layer"), the volatile-*.json beside them, and the
  driver's directories `<driver>/<layer id>` (`overlay/l` holds short links; vfs: `vfs/dir`), and `tmp/`
  when its image copies are staged there (containers.conf `image_copy_tmp_dir = "storage"`, or TMPDIR
  pointed there, as the plugin's own services do: daemons.PodmanService.image_tmp). Elsewhere (a
  Podman the plugin did not start: containers.conf's default `/var/tmp`), the census also lists that
  directory's `api_load.tar…`, the bodies its compat API's load and import were sent and never removed
  (podman#28531), by their full path: only those, for the directory is the machine's.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from .errors import SaveexportError

FORMAT = "saveexport/storage"
FORMAT_VERSION = 1

CONTAINERD_CONTENT = "io.containerd.content.v1.content"
CONTAINERD_METADATA = "io.containerd.metadata.v1.bolt/meta.db"
SNAPSHOTTER_PREFIX = "io.containerd.snapshotter.v1."
# driver directories that are not a layer's: overlay's short links
NOT_LAYERS = frozenset({"l"})
# where a driver keeps its layer directories, when not directly in <driver>/
DRIVER_HOMES = {"vfs": "vfs/dir"}
# containers/storage (5.6+) stages a deletion in <driver>/tempdirs (its internal/tempdir package): each one
# runs in temp-dir-<id> with its lock-<id>, both removed when it ends, and the store leaves the empty
# directory behind; what stays inside is a deletion that never finished (the store recovers it at its next start)
STAGING = "tempdirs"
STAGED_PREFIXES = ("temp-dir-", "lock-")
# the store's own bookkeeping: counted (so a new one shows in `kept`) but never a leftover
BOOKKEEPING = frozenset({"metadata-db", "staging-area"})
# what a listing cannot tie to a name the API gives
UNJUDGED = {"snapshot": "containerd records which snapshot belongs to which layer in its bolt database, "
                        "which a listing does not read; judge snapshots by before and after"}
# which names from the API name which kind of object
NAMES_FOR = {"images": ("image-config", "content-blob"), "chains": ("layer",),
             "containers": ("container", "rw-layer"), "content": ("content-blob",), "volumes": ("volume",)}
TINY = 4096  # cache-id, mount-id: one line
SMALL_BLOB = 256 * 1024  # an index, manifest or config is far smaller; layers are rarely this small

Ref = tuple[str, str]  # (kind, name)
T = TypeVar("T", bound="Objects")


class StorageError(SaveexportError):
    """A store that cannot be counted, or a serialized census of another format; one line."""


@dataclass(frozen=True)
class Objects:
    """Names per kind of object in one engine's store; `error` says in one line why there are none."""

    store: str
    root: str
    objects: dict[str, frozenset[str]] = field(default_factory=dict)
    error: str = ""

    @property
    def measured(self) -> bool:
        return not self.error

    def counts(self) -> dict[str, int]:
        return {kind: len(names) for kind, names in sorted(self.objects.items()) if names}

    def total(self) -> int:
        return sum(len(names) for names in self.objects.values())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "type": type(self).__name__.lower(),
                                "store": self.store, "root": self.root, "error": self.error,
                                "objects": {kind: sorted(names) for kind, names in sorted(self.objects.items())}}
        data.update(self._extra_to_dict())
        return data

    def _extra_to_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Refuses another format or version, so an old evidence file is never misread."""
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise StorageError(f"not a {FORMAT} v{FORMAT_VERSION} record: format {data.get('format')!r}, "
                               f"version {data.get('version')!r}")
        if data.get("type") != cls.__name__.lower():
            raise StorageError(f"a {data.get('type')!r} record, not a {cls.__name__.lower()}")
        objects = {kind: frozenset(names) for kind, names in (data.get("objects") or {}).items()}
        return cls(store=data["store"], root=data["root"], objects=objects, error=data.get("error") or "",
                   **cls._extra_from_dict(data))

    @classmethod
    def _extra_from_dict(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Census(Objects):
    """What a store holds at one moment; `holds` maps an object to the objects it keeps alive
    (a layer to its driver directory, an image to its top layer), read from the store's own records."""

    holds: dict[Ref, frozenset[Ref]] = field(default_factory=dict)

    def _extra_to_dict(self) -> dict[str, Any]:
        return {"holds": {_key(ref): sorted(_key(held) for held in refs) for ref, refs in sorted(self.holds.items())}}

    @classmethod
    def _extra_from_dict(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        holds = data.get("holds") or {}
        return {"holds": {_ref(key): frozenset(_ref(v) for v in values) for key, values in holds.items()}}


@dataclass(frozen=True)
class Kept(Objects):
    """Objects a later census has and an earlier one had not."""


@dataclass(frozen=True)
class Unnamed(Objects):
    """Stored objects that nothing the engine's API names holds; `unjudged`: kinds a listing cannot judge."""

    unjudged: dict[str, str] = field(default_factory=dict)

    def _extra_to_dict(self) -> dict[str, Any]:
        return {"unjudged": dict(sorted(self.unjudged.items()))}

    @classmethod
    def _extra_from_dict(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"unjudged": dict(data.get("unjudged") or {})}


@dataclass(frozen=True)
class Named:
    """What the engine's API still names, as bare hex ids (no "sha256:"); `from_api` fills it from
    docker-py's attrs (`images.list(all=True)`, `containers.list(all=True)`, `volumes.list()`)."""

    images: frozenset[str] = frozenset()
    chains: frozenset[str] = frozenset()
    containers: frozenset[str] = frozenset()
    content: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()

    @classmethod
    def from_api(cls, images: Iterable[Mapping[str, Any]] = (), containers: Iterable[Mapping[str, Any]] = (),
                 volumes: Iterable[Mapping[str, Any]] = (), content: Iterable[str] = ()) -> Named:
        images = list(images)
        chains = {chain for image in images for chain in chain_ids((image.get("RootFS") or {}).get("Layers") or [])}
        return cls(images=_bare_all(image.get("Id", "") for image in images), chains=_bare_all(chains),
                   containers=_bare_all(c.get("Id", "") for c in containers),
                   content=_bare_all(content), volumes=frozenset(v["Name"] for v in volumes if v.get("Name")))


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The layer store's names for an image's layers: moby's layer.CreateChainID, chain(1) = diff(1),
    chain(n) = sha256(chain(n-1) + " " + diff(n)), each with its "sha256:" prefix."""
    chains: list[str] = []
    for diff in diff_ids:
        diff = diff if ":" in diff else f"sha256:{diff}"
        chains.append(diff if not chains else "sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest())
    return chains


# ---------------------------------------------------------------- census


COMPAT_BODY = "api_load.tar"  # how Podman's compat API names the archive a load or an import was sent


def census(root: Path | str, store: str, copy_tmp: Path | str | None = None) -> Census:
    """Never raises: a store that cannot be read is a Census whose `error` says why. `copy_tmp`: a Podman's
    image-copy directory outside its store, whose compat-API bodies count as its tmp."""
    root = Path(root)
    try:
        _directory(root, what="the store's root")
        if store == "podman" or store.startswith("podman:"):
            driver = store.partition(":")[2] or _podman_driver(root)
            objects, holds = _podman(root, driver)
            if copy_tmp is not None and Path(copy_tmp).resolve() != (root / "tmp").resolve():
                objects["tmp"] |= {str(Path(copy_tmp) / name) for name in _entries(Path(copy_tmp))
                                   if name.startswith(COMPAT_BODY)}
            store = f"podman:{driver}"
        elif store == "containerd":
            objects, holds = _containerd(root)
        else:
            objects, holds = _graphdriver(root, store)
    except StorageError as error:
        return Census(store=store, root=str(root), error=str(error))
    return Census(store=store, root=str(root), objects={k: frozenset(v) for k, v in objects.items()}, holds=holds)


def _graphdriver(root: Path, driver: str) -> tuple[dict[str, set[str]], dict[Ref, frozenset[Ref]]]:
    image = root / "image" / driver
    _directory(image, what=f"a {driver} data-root's image/{driver}")
    layerdb = image / "layerdb"
    objects = {"layer": _entries(layerdb / "sha256"), "rw-layer": _entries(layerdb / "mounts"),
               "driver-dir": _entries(root / DRIVER_HOMES.get(driver, driver)) - NOT_LAYERS,
               "image-config": _entries(image / "imagedb" / "content" / "sha256"),
               **_dockerd_objects(root), "tmp": _tmp(root, driver)}
    holds: dict[Ref, frozenset[Ref]] = {}
    for chain in objects["layer"]:
        record = layerdb / "sha256" / chain
        holds[("layer", chain)] = _refs(("driver-dir", _tiny(record / "cache-id")),
                                        ("layer", _bare(_tiny(record / "parent"))))
    for mount in objects["rw-layer"]:
        record = layerdb / "mounts" / mount
        holds[("rw-layer", mount)] = _refs(("driver-dir", _tiny(record / "mount-id")),
                                           ("driver-dir", _tiny(record / "init-id")),
                                           ("layer", _bare(_tiny(record / "parent"))))
    for container in objects["container"]:
        holds[("container", container)] = _refs(("rw-layer", container))
    return objects, {ref: refs for ref, refs in holds.items() if refs}


def _dockerd_objects(root: Path) -> dict[str, set[str]]:
    return {"container": _entries(root / "containers"), "volume": _entries(root / "volumes", dirs_only=True)}


def _tmp(root: Path, driver: str | None = None) -> set[str]:
    """Half-done or forgotten work the engine left (dockerd's `tmp/docker-import-…`, Podman's
    `tmp/api_load.tar…`), by path below its root."""
    places = ["tmp"] + ([f"image/{driver}/layerdb/tmp"] if driver else [])
    return {f"{place}/{name}" for place in places for name in _entries(root / place)}


def containerd_root(root: Path) -> Path:
    """The dockerd's own containerd (`<data-root>/containerd/daemon`), or `root` when it is a containerd
    root itself. A dockerd that found a system containerd at start-up uses that one instead."""
    managed = root / "containerd" / "daemon"
    if managed.is_dir():
        return managed
    if (root / CONTAINERD_CONTENT).is_dir():
        return root
    raise StorageError(f"no containerd root at {managed}: this dockerd may use a system containerd, "
                       f"whose storage is not under its data-root")


def _containerd(root: Path) -> tuple[dict[str, set[str]], dict[Ref, frozenset[Ref]]]:
    ctd = containerd_root(root)
    content = ctd / CONTAINERD_CONTENT
    blobs = content / "blobs" / "sha256"
    objects = {"content-blob": _entries(blobs), "ingest": _entries(content / "ingest"),
               "snapshot": set(), "metadata-db": set(), **_dockerd_objects(root), "tmp": _tmp(root)}
    if (ctd / CONTAINERD_METADATA).exists():
        objects["metadata-db"].add(CONTAINERD_METADATA)
    for snapshotter in sorted(_entries(ctd)):
        if snapshotter.startswith(SNAPSHOTTER_PREFIX):
            name = snapshotter[len(SNAPSHOTTER_PREFIX):]
            objects["snapshot"] |= {f"{name}/{n}" for n in _entries(ctd / snapshotter / "snapshots")}
            if (ctd / snapshotter / "metadata.db").exists():
                objects["metadata-db"].add(f"{snapshotter}/metadata.db")
    holds = {("content-blob", blob): refs for blob in objects["content-blob"] if (refs := _blob_refs(blobs / blob))}
    return objects, holds


def _blob_refs(path: Path) -> frozenset[Ref]:
    """The blobs an index or manifest references (what containerd's GC follows); other blobs hold none."""
    try:
        if path.lstat().st_size > SMALL_BLOB:
            return frozenset()
        with open(path, "rb") as f:
            if f.read(1) != b"{":
                return frozenset()
            document = json.loads(b"{" + f.read())
    except (OSError, ValueError):
        return frozenset()
    if not isinstance(document, dict):
        return frozenset()
    descriptors = [document.get("config")] + _list(document.get("manifests")) + _list(document.get("layers"))
    return _refs(*(("content-blob", _bare(_text(d.get("digest")))) for d in descriptors if isinstance(d, dict)))


def _podman_driver(root: Path) -> str:
    drivers = sorted(name[:-len("-layers")] for name in _entries(root) if name.endswith("-layers"))
    if not drivers:
        raise StorageError(f"no <driver>-layers directory in {root}: not a containers/storage root")
    return "overlay" if "overlay" in drivers else drivers[0]


def _podman(root: Path, driver: str) -> tuple[dict[str, set[str]], dict[Ref, frozenset[Ref]]]:
    layers_dir, images_dir, containers_dir = (root / f"{driver}-{part}" for part in ("layers", "images", "containers"))
    _directory(layers_dir, what=f"a containers/storage root's {driver}-layers")
    layers = _records(layers_dir, "layers.json", "volatile-layers.json")
    images = _records(images_dir, "images.json")
    containers = _records(containers_dir, "containers.json", "volatile-containers.json")
    home = root / DRIVER_HOMES.get(driver, driver)
    staging = {place for place in (root / driver / STAGING, home / STAGING) if place.is_dir()}
    objects = {"layer": set(layers), "image-config": set(images), "container": set(containers),
               "driver-dir": _entries(home) - NOT_LAYERS - {STAGING},
               "staging-area": {str(place.relative_to(root)) for place in staging},
               "staged-deletion": {_staged(place.relative_to(root), name) for place in staging
                                   for name in _entries(place)},
               "image-data": _entries(images_dir, dirs_only=True),
               "container-data": _entries(containers_dir, dirs_only=True),
               "volume": _entries(root / "volumes", dirs_only=True), "tmp": _tmp(root)}
    holds: dict[Ref, frozenset[Ref]] = {}
    for layer, record in layers.items():
        holds[("layer", layer)] = _refs(("layer", _text(record.get("parent"))), ("driver-dir", layer))
    for image, record in images.items():
        tops = [record.get("layer")] + _list(record.get("mapped-layers"))
        holds[("image-config", image)] = _refs(("image-data", image), *(("layer", _text(top)) for top in tops))
    for container, record in containers.items():
        holds[("container", container)] = _refs(("container-data", container), ("layer", _text(record.get("layer"))))
    return objects, {ref: refs for ref, refs in holds.items() if refs}


def _staged(area: Path, name: str) -> str:
    """One staged deletion, named by its area and id, whether its directory, its lock or both are left."""
    for prefix in STAGED_PREFIXES:
        if name.startswith(prefix):
            return f"{area}/{name[len(prefix):]}"
    return f"{area}/{name}"


def _records(directory: Path, *names: str) -> dict[str, dict[str, Any]]:
    """containers/storage's JSON lists of records, by id; a missing file is an empty list, as there."""
    records: dict[str, dict[str, Any]] = {}
    for name in names:
        path = directory / name
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror or error}") from None
        try:
            data = json.loads(text) if text.strip() else []
        except ValueError as error:  # JSON or UTF-8
            raise StorageError(f"{path} is not JSON: {str(error).splitlines()[0]}") from None
        if not isinstance(data, list):
            raise StorageError(f"{path} holds a JSON {type(data).__name__}, not a list of records")
        records.update({r["id"]: r for r in data if isinstance(r, dict) and isinstance(r.get("id"), str)})
    return records


# ---------------------------------------------------------------- listings


def _directory(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise StorageError(f"{path} does not exist ({what})") from None
    except OSError as error:
        raise StorageError(f"cannot read {path} ({what}): {error.strerror or error}") from None
    if not stat.S_ISDIR(mode):
        raise StorageError(f"{path} is not a directory ({what})")


def _entries(path: Path, dirs_only: bool = False) -> set[str]:
    """A directory's names; one the engine has not made yet is empty (engines make them lazily)."""
    try:
        with os.scandir(path) as listing:
            return {e.name for e in listing if not dirs_only or e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        return set()
    except NotADirectoryError:
        raise StorageError(f"{path} is not a directory") from None
    except OSError as error:
        raise StorageError(f"cannot list {path}: {error.strerror or error}") from None


def _tiny(path: Path) -> str:
    """A one-line record such as cache-id; "" where there is none (a layer being written)."""
    try:
        with open(path, "rb") as f:
            return f.read(TINY).decode(errors="replace").strip()
    except OSError:
        return ""


def _text(value: Any) -> str:
    """A record's field where a string belongs; anything else (a damaged record) names nothing."""
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _refs(*refs: Ref) -> frozenset[Ref]:
    return frozenset((kind, name) for kind, name in refs if name)


def _bare(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def _bare_all(digests: Iterable[str]) -> frozenset[str]:
    return frozenset(_bare(d) for d in digests if d)


def _key(ref: Ref) -> str:
    return f"{ref[0]}:{ref[1]}"


def _ref(key: str) -> Ref:
    kind, _, name = key.partition(":")
    return kind, name


# ---------------------------------------------------------------- comparisons


def kept(before: Census, after: Census) -> Kept:
    """Objects that appeared between two censuses of the same store; not measurable if either was not."""
    if before.error or after.error:
        which = "before" if before.error else "after"
        return Kept(store=after.store, root=after.root, error=f"{which}: {before.error or after.error}")
    if (before.store, before.root) != (after.store, after.root):
        return Kept(store=after.store, root=after.root,
                    error=f"two stores: {before.store} at {before.root}, {after.store} at {after.root}")
    objects = {kind: frozenset(names - before.objects.get(kind, frozenset())) for kind, names in after.objects.items()}
    return Kept(store=after.store, root=after.root, objects=objects)


def unnamed(stored: Census, named: Named) -> Unnamed:
    """Objects that neither the API's names nor anything those names hold keep alive: a leftover."""
    if stored.error:
        return Unnamed(store=stored.store, root=stored.root, error=stored.error)
    reached = _reach(stored, _roots(stored, named))
    unjudged = {kind: reason for kind, reason in UNJUDGED.items() if stored.objects.get(kind)}
    objects = {kind: frozenset(name for name in names if (kind, name) not in reached)
               for kind, names in stored.objects.items() if kind not in BOOKKEEPING and kind not in unjudged}
    return Unnamed(store=stored.store, root=stored.root, objects=objects, unjudged=unjudged)


def _roots(store: Census, named: Named) -> set[Ref]:
    roots: set[Ref] = set()
    for attribute, kinds in NAMES_FOR.items():
        for kind in kinds:
            present = store.objects.get(kind, frozenset())
            roots |= {(kind, name) for name in getattr(named, attribute) if name in present}
    return roots


def _reach(store: Census, roots: set[Ref]) -> set[Ref]:
    reached, todo = set(roots), list(roots)
    while todo:
        for held in store.holds.get(todo.pop(), frozenset()):
            if held not in reached:
                reached.add(held)
                todo.append(held)
    return reached


# ---------------------------------------------------------------- bytes


def measure(root: Path | str, objects: Objects) -> dict[str, int]:
    """Bytes per kind of the given objects only, as `du -x` would count files: lstat sizes, symlinks
    not followed, a hardlinked file once, no descent into mounts (a running container's merged root).
    Directories themselves count nothing: their sizes depend on the file system, not on the engine."""
    if objects.error:
        return {}
    root, seen = Path(root), set()
    totals: dict[str, int] = {}
    for kind, names in sorted(objects.objects.items()):
        if names:
            totals[kind] = sum(_tree_bytes(path, seen) for name in sorted(names)
                               for path in object_paths(root, objects.store, kind, name))
    return totals


def object_paths(root: Path, store: str, kind: str, name: str) -> list[Path]:
    """Where an object's bytes are, below the store's root (an object may span several places)."""
    if store.startswith("podman"):
        return _podman_paths(root, store.partition(":")[2] or "overlay", kind, name)
    if kind == "tmp":
        return [root / name]
    if kind in ("container", "volume"):
        return [root / f"{kind}s" / name]
    if store == "containerd":
        return _containerd_paths(root, kind, name)
    image = root / "image" / store
    return {"layer": [image / "layerdb" / "sha256" / name], "rw-layer": [image / "layerdb" / "mounts" / name],
            "driver-dir": [root / DRIVER_HOMES.get(store, store) / name],
            "image-config": [image / "imagedb" / part / "sha256" / name for part in ("content", "metadata")],
            }.get(kind, [])


def _containerd_paths(root: Path, kind: str, name: str) -> list[Path]:
    try:
        ctd = containerd_root(root)
    except StorageError:
        return []
    if kind == "snapshot":
        snapshotter, _, number = name.partition("/")
        return [ctd / f"{SNAPSHOTTER_PREFIX}{snapshotter}" / "snapshots" / number]
    content = ctd / CONTAINERD_CONTENT
    return {"content-blob": [content / "blobs" / "sha256" / name], "ingest": [content / "ingest" / name],
            "metadata-db": [ctd / name]}.get(kind, [])


def _podman_paths(root: Path, driver: str, kind: str, name: str) -> list[Path]:
    if kind == "staged-deletion":
        area, _, staged = name.rpartition("/")
        return [path for path in (root / area / f"{prefix}{staged}" for prefix in STAGED_PREFIXES + ("",))
                if path.exists() or path.is_symlink()]
    return {"staging-area": [root / name], "tmp": [root / name], "layer": [root / f"{driver}-layers" / f"{name}.tar-split.gz"],
            "driver-dir": [root / DRIVER_HOMES.get(driver, driver) / name],
            "image-data": [root / f"{driver}-images" / name], "container-data": [root / f"{driver}-containers" / name],
            "volume": [root / "volumes" / name]}.get(kind, [])


def _tree_bytes(top: Path, seen: set[tuple[int, int]]) -> int:
    try:
        first = top.lstat()
    except OSError:
        return 0  # gone since the census
    total, todo = 0, [(str(top), first)]
    while todo:
        path, st = todo.pop()
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev == first.st_dev:
                todo.extend(_children(path))
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _children(path: str) -> list[tuple[str, os.stat_result]]:
    children = []
    try:
        with os.scandir(path) as listing:
            for entry in listing:
                try:
                    children.append((entry.path, entry.stat(follow_symlinks=False)))
                except OSError:
                    continue
    except OSError:
        return []
    return children
