"""What an engine keeps in its storage over a run, watched from its own directories (storage.py).

A census is taken when the run first reaches the engine, after every test on it, and at the end after
the run's cleanup. Whatever is stored then that nothing the engine's API names, and that was not there
before the run, is the engine's own keeping; each object is attributed to the test after which it first
appeared. On a private engine the suite owns the data-root and one worker uses it, so that attribution
holds. The machine's engine is shared (other workers, other users): there only the whole run is
compared, and only when its data-root is on this host and readable; otherwise the evidence says why not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from . import storage
from .engines import Engine


@dataclass
class Place:
    """Where an engine's storage is, what kind it is, and whether the suite alone uses it."""

    root: Path | None
    store: str
    shared: bool
    why_not: str = ""  # why it cannot be listed here, when root is None
    copy_tmp: Path | None = None  # a shared Podman's image-copy directory, where its compat API leaves bodies

    def census(self) -> storage.Census:
        return storage.census(self.root, self.store, self.copy_tmp)


def place_of(engine: Engine, private_root: Path | None) -> Place:
    facts = engine.facts
    if facts.kind == "podman":
        store = "podman"
    else:
        store = "containerd" if facts.image_store == "containerd" else facts.storage_driver
    if private_root is not None:
        return Place(private_root, store, shared=False)
    if not engine.endpoint.startswith("unix://"):
        return Place(None, store, True, f"the engine at {engine.endpoint} is not on this host: its storage "
                                        f"cannot be listed here")
    root = str(engine.client.info().get("DockerRootDir") or "")
    if not root or not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        return Place(None, store, True, f"its data-root ({root or 'not reported'}) is not readable on this host")
    return Place(Path(root), store, shared=True, copy_tmp=_image_copy_tmp(engine) if store == "podman" else None)


def _image_copy_tmp(engine: Engine) -> Path | None:
    """Where a Podman stages image copies (containers.conf image_copy_tmp_dir, or its TMPDIR), from its own
    API: its compat API's load and import leave their bodies there. None when it does not say or cannot
    be read here."""
    api = engine.client.api
    try:
        response = api.get(f"{api.base_url}/v4.0.0/libpod/info", timeout=30)
        response.raise_for_status()
        found = str(((response.json() or {}).get("store") or {}).get("imageCopyTmpDir") or "")
    except (docker.errors.DockerException, OSError, ValueError, AttributeError):
        return None  # one that serves only the compat API (a proxy, a stand-in): its bodies are not counted
    return Path(found) if found and os.path.isdir(found) and os.access(found, os.R_OK | os.X_OK) else None


@dataclass
class Watch:
    place: Place
    start: storage.Census | None = None
    history: list[tuple[str, storage.Census]] = field(default_factory=list)
    current: str = ""  # the test in progress: the last one's teardown holds the run's cleanup

    def __post_init__(self) -> None:
        if self.place.root is not None:
            self.start = self.place.census()

    def test_started(self, nodeid: str) -> None:
        self.current = nodeid

    def test_ended(self, nodeid: str) -> None:
        if self.place.root is not None and not self.place.shared:
            self.history.append((nodeid, self.place.census()))

    def result(self, engine: Engine) -> dict[str, Any]:
        """The evidence: counts before and after, and what the engine kept that nothing names."""
        place = self.place
        out: dict[str, Any] = {"engine": engine.facts.label, "store": place.store, "shared": place.shared,
                               "measured": False}
        if place.copy_tmp is not None:
            out["copy_tmp"] = str(place.copy_tmp)
        if place.root is None or self.start is None:
            return dict(out, why=place.why_not)
        end = self.place.census()
        if self.start.error or end.error:
            return dict(out, why=self.start.error or end.error)
        try:
            named = _named(engine)
        except docker.errors.DockerException as exc:
            return dict(out, why=f"the engine could not say what it names ({str(exc)[:200]})")
        appeared = storage.kept(self.start, end)
        nobody = storage.unnamed(end, named)
        kept = {kind: sorted(names & appeared.objects.get(kind, frozenset()))
                for kind, names in nobody.objects.items()}
        kept = {kind: names for kind, names in kept.items() if names}
        objects = storage.Kept(store=end.store, root=end.root, objects={k: frozenset(v) for k, v in kept.items()})
        bytes_by_kind = storage.measure(place.root, objects)
        leftovers = [{"kind": kind, "name": name, "after": self._first_seen(kind, name)}
                     for kind, names in sorted(kept.items()) for name in names]
        return dict(out, measured=True, before=self.start.counts(), after=end.counts(),
                    unjudged=nobody.unjudged, kept=leftovers, kept_bytes=bytes_by_kind,
                    attributed="per test" if not place.shared else "whole run (a shared engine)")

    def _first_seen(self, kind: str, name: str) -> str:
        if self.place.shared:
            return "the run"
        for nodeid, taken in self.history:
            if name in taken.objects.get(kind, frozenset()):
                return nodeid
        return f"{self.current} (or the run's cleanup after it)" if self.current else "the run's cleanup"


def _named(engine: Engine) -> storage.Named:
    api = engine.api
    images = []
    for summary in api.images(all=True):
        try:
            images.append(api.inspect_image(summary["Id"]))
        except docker.errors.NotFound:  # removed meanwhile
            continue
    volumes = (api.volumes() or {}).get("Volumes") or []
    return storage.Named.from_api(images=images, containers=api.containers(all=True), volumes=volumes)


def summary(kept: list[dict[str, Any]]) -> str:
    """What an engine kept, without ids: 'layer ×2, driver-dir ×2 after test_x'; the baseline compares it."""
    if not kept:
        return "nothing"
    by_test: dict[str, dict[str, int]] = {}
    for item in kept:
        after = item["after"].split("[", 1)[0]  # the test, not its engine id
        by_test.setdefault(after, {}).setdefault(item["kind"], 0)
        by_test[after][item["kind"]] += 1
    return "; ".join(f"{counted(kinds)} after {test}" for test, kinds in sorted(by_test.items()))


def counted(kinds: dict[str, int]) -> str:
    """{'rw-layer': 1, 'driver-dir': 2} → 'driver-dir ×2, rw-layer ×1'; nothing → 'nothing'."""
    return ", ".join(f"{kind} ×{n}" for kind, n in sorted(kinds.items())) or "nothing"
