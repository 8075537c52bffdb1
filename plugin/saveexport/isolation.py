"""Keeping the user's engine untouched: a namespace and labels per run, a snapshot, and cleanup.

Every name the suite creates starts with ``saveexport-<run>-`` and every container and built
image carries the run's labels. Loading an archive can move tags silently, so the suite only
ever saves, loads and imports under its own namespace, and cleanup removes, by name, by label
and by recorded id, everything the run made — and nothing that existed before it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import docker.errors

from .engines import Engine

LABEL_CREATOR = "io.saveexport.creator"
LABEL_RUN = "io.saveexport.run"
LABEL_CACHE = "io.saveexport.cache"
CREATOR = "saveexport"
CACHE_PREFIX = "saveexport-cache-"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What exists on an engine: image ids with their tags, containers, volumes, networks."""

    images: dict[str, tuple[str, ...]]
    containers: dict[str, str]
    volumes: frozenset[str]
    networks: frozenset[str]
    parents: dict[str, str] = field(default_factory=dict)  # image id -> its parent's (the classic builder's steps)

    @classmethod
    def take(cls, engine: Engine) -> Snapshot:
        api = engine.api
        listed = api.images(all=True)
        images = {i["Id"]: tuple(sorted(i.get("RepoTags") or ())) for i in listed}
        parents = {i["Id"]: i["ParentId"] for i in listed if i.get("ParentId")}
        containers = {c["Id"]: (c.get("Names") or ["?"])[0] for c in api.containers(all=True)}
        volumes = frozenset(v["Name"] for v in (api.volumes().get("Volumes") or []))
        networks = frozenset(n["Name"] for n in api.networks())
        return cls(images, containers, volumes, networks, parents)

    def changes_since(self, before: Snapshot) -> dict[str, Any]:
        """What differs from `before`; empty when the engine is as it was."""
        out: dict[str, Any] = {}
        gone = {i: t for i, t in before.images.items() if i not in self.images}
        new = {i: t for i, t in self.images.items() if i not in before.images}
        retagged = {i: (before.images[i], self.images[i]) for i in before.images
                    if i in self.images and before.images[i] != self.images[i]}
        for key, value in (("images_removed", gone), ("images_added", new), ("images_retagged", retagged),
                           ("containers_removed", sorted(set(before.containers) - set(self.containers))),
                           ("containers_added", sorted(set(self.containers) - set(before.containers))),
                           ("volumes_removed", sorted(before.volumes - self.volumes)),
                           ("volumes_added", sorted(self.volumes - before.volumes)),
                           ("networks_removed", sorted(before.networks - self.networks)),
                           ("networks_added", sorted(self.networks - before.networks))):
            if value:
                out[key] = value
        return out


def short_tag(tag: str) -> str:
    """Podman and the containerd store may spell `name:tag` as localhost/… or docker.io/library/…."""
    for prefix in ("localhost/", "docker.io/library/"):
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return tag


def full_id(image_id: str) -> str:
    """`sha256:<hex>`: Podman reports some ids bare, and its compat API refuses a bare 64-hex name."""
    return f"sha256:{image_id}" if re.fullmatch(r"[0-9a-f]{64}", image_id) else image_id


def engine_kept_images(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    """Images that appeared during the run and survived its cleanup, other than the plugin's cache
    (saveexport-cache-*, which seeds private engines) and the steps it was built through (a cold cache
    builds it during the run, and the classic builder keeps each step as its parent until it is removed):
    what the engine itself kept (id → tags)."""
    cache = {image_id for image_id, tags in after.images.items()
             if tags and all(short_tag(tag).startswith(CACHE_PREFIX) for tag in tags)}
    steps = set()
    for image_id in cache:
        parent = after.parents.get(image_id)
        while parent and parent not in steps and parent not in cache and not after.images.get(parent, ()):
            steps.add(parent)
            parent = after.parents.get(parent)
    return {image_id: list(tags) for image_id, tags in after.images.items()
            if image_id not in before.images and image_id not in cache and image_id not in steps}


def describe_images(engine: Engine, image_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Where an image the engine kept came from (how it was made, when, our labels), for the report."""
    out: dict[str, dict[str, Any]] = {}
    for image_id in image_ids:
        try:
            info = engine.api.inspect_image(image_id)
            history = engine.api.history(image_id) or [{}]
        except docker.errors.APIError as exc:
            out[image_id] = {"error": str(exc.explanation or exc)}
            continue
        labels = (info.get("Config") or {}).get("Labels") or {}
        out[image_id] = {
            "created": info.get("Created"), "bytes": info.get("Size"),
            "layers": len((info.get("RootFS") or {}).get("Layers") or []),
            "made_by": (history[0].get("CreatedBy") or history[0].get("Comment") or "")[:200],
            "labels": {k: v for k, v in labels.items() if k.startswith("io.saveexport.")},
        }
    return out


def disk_usage(engine: Engine) -> dict[str, int]:
    """What the engine says it holds (docker system df): to tell what it keeps after everything is removed."""
    try:
        df = engine.api.df()
    except docker.errors.APIError:
        return {}
    return {"layers_bytes": int(df.get("LayersSize") or 0), "images": len(df.get("Images") or []),
            "containers": len(df.get("Containers") or []), "volumes": len(df.get("Volumes") or []),
            "build_cache": len(df.get("BuildCache") or [])}


@dataclass
class RunScope:
    """One run's namespace, labels and ledger of what it created."""

    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    images: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)

    @property
    def prefix(self) -> str:
        return f"saveexport-{self.run_id}-"

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}"

    def ref(self, what: str, tag: str = "latest") -> str:
        return f"{self.prefix}{what}:{tag}"

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_CREATOR: CREATOR, LABEL_RUN: self.run_id, "io.saveexport.pid": str(os.getpid())}

    def owns_tag(self, tag: str) -> bool:
        return short_tag(tag).startswith(self.prefix)

    def track_image(self, image_id: str | None) -> None:
        if image_id:
            self.images.add(full_id(image_id))

    def track_container(self, container_id: str | None) -> None:
        if container_id:
            self.containers.add(container_id)

    def remaining(self, engine: Engine, protected: Snapshot | None = None) -> dict[str, list[str]]:
        """What of this run is still on the engine (after cleanup: must be nothing).

        Only this run's own things are looked at, so other runs on the same engine cannot confuse it.
        """
        api = engine.api
        label = f"{LABEL_RUN}={self.run_id}"
        kept = set(protected.images) if protected else set()
        present = {i["Id"]: i.get("RepoTags") or [] for i in api.images(all=True)}
        out = {
            "containers": sorted({c["Id"][:12] for c in api.containers(all=True, filters={"label": label})} |
                                 {c[:12] for c in self.containers if _exists(api.inspect_container, c)}),
            "tags": sorted(t for tags in present.values() for t in tags if self.owns_tag(t)),
            "images": sorted(i[:19] for i in (self.images & set(present)) - kept),
            "volumes": sorted(v["Name"] for v in api.volumes(filters={"label": label}).get("Volumes") or []),
        }
        return {k: v for k, v in out.items() if v}

    def cleanup(self, engine: Engine, protected: Snapshot | None = None) -> list[str]:
        """Remove what this run made; returns one line per thing that could not be removed."""
        return sweep(engine, run_id=self.run_id, owns_tag=self.owns_tag, image_ids=self.images,
                     container_ids=self.containers, protected=protected)


def sweep(engine: Engine, *, run_id: str | None, owns_tag: Callable[[str], bool], image_ids: Iterable[str] = (),
          container_ids: Iterable[str] = (), protected: Snapshot | None = None) -> list[str]:
    """Remove containers, tags and images of one run (or of every run when run_id is None)."""
    api = engine.api
    problems: list[str] = []
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN

    containers = {c["Id"] for c in api.containers(all=True, filters={"label": label})}
    containers |= set(container_ids)
    for cid in containers:
        with _gone_ok(problems, f"container {cid[:12]}"):
            api.remove_container(cid, force=True, v=True)

    protected_ids = set(protected.images) if protected else set()
    # Untag every tag in the namespace: loads and imports create tags without labels.
    for image in api.images(all=True):
        for tag in image.get("RepoTags") or ():
            if owns_tag(tag):
                with _gone_ok(problems, f"tag {tag}"):
                    api.remove_image(tag, noprune=False)
    doomed = {i["Id"] for i in api.images(all=True, filters={"label": label})} | set(image_ids)
    # Children first: removing an image that another image builds on fails.
    for _ in range(3):
        left = set()
        for iid in doomed - protected_ids:
            try:
                api.remove_image(iid, force=False, noprune=False)
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError:
                left.add(iid)
        doomed = left
        if not doomed:
            break
    for iid in doomed - protected_ids:
        with _gone_ok(problems, f"image {iid[:19]}"):
            tags = [t for t in (api.inspect_image(iid).get("RepoTags") or [])]
            if tags:  # tagged by someone else since: not ours to remove
                continue
            api.remove_image(iid, force=True)

    for volume in api.volumes(filters={"label": label}).get("Volumes") or []:
        with _gone_ok(problems, f"volume {volume['Name']}"):
            api.remove_volume(volume["Name"], force=True)
    for network in api.networks(filters={"label": label}):
        with _gone_ok(problems, f"network {network['Name']}"):
            api.remove_network(network["Id"])
    return problems


def _exists(inspect: Callable[[str], Any], ident: str) -> bool:
    try:
        inspect(ident)
        return True
    except docker.errors.NotFound:
        return False


@contextlib.contextmanager
def _gone_ok(problems: list[str], what: str):
    try:
        yield
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        problems.append(f"could not remove {what}: {exc.explanation or exc}")
