"""The subject images: the article's postgres:9.6 (and mongo:3.4), found, pulled, or built offline.

Where no registry answers, a stand-in is built from Debian packages (standin.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker.errors

from . import progress
from .engines import Engine
from .errors import SubjectUnavailable
from .debian_mirror import Mirrors
from .isolation import RunScope
from .operations import build_labelled_copy
from .standin import STANDINS, build_standin

log = logging.getLogger(__name__)

SOURCES = ("auto", "pull", "build")
DEFAULT_IMAGE = "postgres:9.6"
DEFAULT_SECOND_IMAGE = "mongo:3.4"
DEFAULT_SUITE = "bullseye"  # the last Debian base of the postgres:9.6 images

APP_IMAGE = "saveexport-app:1"  # the project's own app for the compose scenario: always built, never pulled


@dataclass
class SubjectImage:
    """An image the experiments use, and how it was obtained."""

    requested: str  # what the user asked for, e.g. postgres:9.6
    source_ref: str  # the image the run copy was made from
    obtained: str  # present | pulled | built | cached-build
    image_id: str = ""
    run_ref: str = ""  # the run's own tag, which experiments save, load and import
    run_id: str = ""  # id of the run's labelled copy
    layers: int = 0
    size: int = 0
    recipe: str = ""
    note: str = ""
    build_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repository_name(ref: str) -> str:
    """postgres:9.6 -> postgres; registry.example/lib/postgres:9.6 -> postgres."""
    name = ref.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def tag_of(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def obtain(engine: Engine, ref: str, source: str, scope: RunScope, *, cache_dir: Path,
           mirrors: Mirrors, suite: str = DEFAULT_SUITE, seed: str | None = None,
           private: bool = False) -> SubjectImage:
    """Find, pull or build `ref`, then give the run a labelled copy of its own to work on.

    `seed`: for a private engine, the endpoint of the machine's own engine, which builds (or already
    has) the image once and streams it over: a private engine has no registry and builds nothing.
    """
    if source not in SOURCES:
        raise SubjectUnavailable(f"unknown image source {source!r}; use one of {', '.join(SOURCES)}")
    subject = _find_or_pull(engine, ref, source)
    if subject is None and private:
        subject = _from_seed(engine, ref, source, seed, cache_dir=cache_dir, suite=suite, mirrors=mirrors)
    if subject is None:
        standin = STANDINS.get(repository_name(ref))
        if standin is None:
            raise SubjectUnavailable(
                f"{ref} is not on the engine, cannot be pulled, and saveexport has no offline recipe for it; "
                f"load it first (docker load -i ...) or use --saveexport-image-source=build with postgres or mongo")
        subject = build_standin(engine, ref, standin, cache_dir=cache_dir, suite=suite, mirrors=mirrors)
    _make_run_copy(engine, subject, scope)
    return subject


def _from_seed(engine: Engine, ref: str, source: str, seed: str | None, **build) -> SubjectImage:
    """The image as the machine's own engine has it (found, pulled or built there), streamed save → load."""
    seed_engine = Engine.connect(seed)
    try:
        seeded = _find_or_pull(seed_engine, ref, source)
        if seeded is None:
            standin = STANDINS.get(repository_name(ref))
            if standin is None:
                raise SubjectUnavailable(f"{ref} is on neither engine and has no offline recipe; load it first")
            seeded = build_standin(seed_engine, ref, standin, **build)
        try:
            engine.api.inspect_image(seeded.source_ref)
        except docker.errors.ImageNotFound:
            started = time.monotonic()
            what = f"streaming {seeded.source_ref} from {seed_engine.endpoint} into {engine.endpoint}"
            with progress.phase(what) as p:
                stream = p.stream(seed_engine.api.get_image(seeded.source_ref))
                for message in engine.api.load_image(stream):
                    if "error" in message:
                        raise SubjectUnavailable(f"loading {seeded.source_ref} into the private engine failed: "
                                                 f"{message['error']}")
            seeded.note = (seeded.note + "; " if seeded.note else "") + \
                f"streamed from {seed_engine.endpoint} in {time.monotonic() - started:.0f} s"
        seeded.image_id = engine.api.inspect_image(seeded.source_ref)["Id"]
        return seeded
    finally:
        seed_engine.close()


def _find_or_pull(engine: Engine, ref: str, source: str) -> SubjectImage | None:
    if source in ("auto", "pull"):
        try:
            image = engine.client.images.get(ref)
            return SubjectImage(requested=ref, source_ref=ref, obtained="present", image_id=image.id)
        except docker.errors.ImageNotFound:
            pass
        try:
            image = engine.client.images.pull(ref)
            return SubjectImage(requested=ref, source_ref=ref, obtained="pulled", image_id=image.id)
        except docker.errors.APIError as exc:
            if source == "pull":
                raise SubjectUnavailable(
                    f"cannot pull {ref}: {exc.explanation or exc}; use --saveexport-image-source=build "
                    f"(or auto) to build an offline stand-in") from exc
            log.info("pull of %s failed (%s); building a stand-in", ref, exc.explanation)
            return None
    return None


def _make_run_copy(engine: Engine, subject: SubjectImage, scope: RunScope) -> None:
    """A labelled image of the run's own (same layers, new id), so removing it harms nobody."""
    run_ref = scope.ref(repository_name(subject.requested), tag_of(subject.requested))
    try:
        build_labelled_copy(engine, subject.source_ref, run_ref, scope.labels, scope)
    except docker.errors.BuildError as exc:
        raise SubjectUnavailable(f"could not make a run copy of {subject.source_ref}: {exc.msg}") from exc
    image = engine.client.images.get(run_ref)
    subject.run_ref = run_ref
    subject.run_id = image.id
    subject.layers = len(image.attrs.get("RootFS", {}).get("Layers") or [])
    subject.size = int(image.attrs.get("Size") or 0)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saveexport"
