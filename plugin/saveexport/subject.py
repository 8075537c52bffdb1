"""The subject images: the article's postgres:9.6 (and mongo:3.4), found, pulled, or built offline.

Where no registry answers, a stand-in is built from Debian packages: a base root made with
mmdebstrap and imported, then a Dockerfile modelled on the official image. Both are cached on
the engine under ``saveexport-cache-*`` tags keyed by a hash of the recipe, so they are built
once per engine and reused by every run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import docker.errors

from .engines import Engine
from .errors import SubjectUnavailable
from .operations import build_labelled_copy
from .provision import cache_lock
from .isolation import CACHE_PREFIX, CREATOR, LABEL_CACHE, LABEL_CREATOR, RunScope

log = logging.getLogger(__name__)

SOURCES = ("auto", "pull", "build")
DEFAULT_IMAGE = "postgres:9.6"
DEFAULT_SECOND_IMAGE = "mongo:3.4"
DEFAULT_SUITE = "bullseye"  # the last Debian base of the postgres:9.6 images
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Which stand-in recipe (assets/<name>) replaces which image when it cannot be pulled.
STANDINS = {"postgres": "postgres", "mongo": "second", "saveexport-app": "app"}
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
           suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR, seed: str | None = None,
           private: bool = False) -> SubjectImage:
    """Find, pull or build `ref`, then give the run a labelled copy of its own to work on.

    `seed`: for a private engine, the endpoint of the machine's own engine, which builds (or already
    has) the image once and streams it over: a private engine has no registry and builds nothing.
    """
    if source not in SOURCES:
        raise SubjectUnavailable(f"unknown image source {source!r}; use one of {', '.join(SOURCES)}")
    subject = _find_or_pull(engine, ref, source)
    if subject is None and private:
        subject = _from_seed(engine, ref, source, seed, cache_dir=cache_dir, suite=suite, mirror=mirror)
    if subject is None:
        standin = STANDINS.get(repository_name(ref))
        if standin is None:
            raise SubjectUnavailable(
                f"{ref} is not on the engine, cannot be pulled, and saveexport has no offline recipe for it; "
                f"load it first (docker load -i ...) or use --saveexport-image-source=build with postgres or mongo")
        subject = build_standin(engine, ref, standin, cache_dir=cache_dir, suite=suite, mirror=mirror)
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
            stream = seed_engine.api.get_image(seeded.source_ref)
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


def recipe_hash(standin: str, suite: str, mirror: str) -> str:
    digest = hashlib.sha256(f"{suite}\n{mirror}\n".encode())
    with resources.as_file(resources.files("saveexport") / "assets") as assets:
        for folder in ("base", standin):
            for path in sorted((assets / folder).rglob("*")):
                if path.is_file():
                    digest.update(str(path.relative_to(assets)).encode())
                    digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_standin(engine: Engine, ref: str, standin: str, *, cache_dir: Path, suite: str,
                  mirror: str) -> SubjectImage:
    recipe = recipe_hash(standin, suite, mirror)
    cache_ref = f"{CACHE_PREFIX}{repository_name(ref)}:{tag_of(ref)}-{recipe}"
    note = (f"stand-in for {ref} built offline from Debian {suite} packages "
            f"(plugin/saveexport/assets/{standin})")
    cached = _image_id(engine, cache_ref)
    if cached is None:
        with cache_lock(cache_dir):  # engines side by side: one worker builds, the others wait and find it
            cached = _image_id(engine, cache_ref)
            if cached is None:
                started = time.monotonic()
                base_ref = ensure_base(engine, cache_dir=cache_dir, suite=suite, mirror=mirror)
                with resources.as_file(resources.files("saveexport") / "assets" / standin) as context:
                    image_id = _build(engine, str(context), cache_ref, {"BASE": base_ref}, recipe, cache_dir)
                return SubjectImage(requested=ref, source_ref=cache_ref, obtained="built", image_id=image_id,
                                    recipe=recipe, note=note, build_seconds=round(time.monotonic() - started, 1))
    return SubjectImage(requested=ref, source_ref=cache_ref, obtained="cached-build", image_id=cached,
                        recipe=recipe, note=note)


def _image_id(engine: Engine, ref: str) -> str | None:
    try:
        return engine.client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def ensure_base(engine: Engine, *, cache_dir: Path, suite: str, mirror: str) -> str:
    """A minimal Debian root (the shape of debian:<suite>-slim), imported as an image once."""
    recipe = recipe_hash("base", suite, mirror)
    base_ref = f"{CACHE_PREFIX}debian:{suite}-{recipe}"
    try:
        engine.client.images.get(base_ref)
        return base_ref
    except docker.errors.ImageNotFound:
        pass
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise SubjectUnavailable(
            "the subject image must be built offline but mmdebstrap is missing; install it "
            "('apt-get install mmdebstrap', or run scripts/engine up as root) or load the image yourself")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("saveexport") / "assets" / "base") as base, \
            tempfile.TemporaryDirectory(dir=cache_dir, prefix="base-") as tmp:
        root_tar = Path(tmp) / "root.tar"
        argv = [tool, "--variant=minbase", "--format=tar",
                *(f"--aptopt={base / name}" for name in
                  ("docker-clean", "docker-no-recommends", "docker-no-languages", "docker-gzip-indexes")),
                f"--dpkgopt={base / 'dpkg-excludes'}",
                # the build host's name and resolver do not belong in an image; the engine mounts its own
                '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"',
                suite, str(root_tar), mirror]
        log_path = cache_dir / "mmdebstrap.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise SubjectUnavailable(f"mmdebstrap could not make a Debian {suite} root ({last[0]}); "
                                     f"full log: {log_path}")
        repository, tag = base_ref.rsplit(":", 1)
        result = engine.api.import_image_from_file(str(root_tar), repository=repository, tag=tag,
                                                   changes=['CMD ["bash"]'])
        if "error" in str(result).lower() and "sha256:" not in str(result):
            raise SubjectUnavailable(f"the engine refused the base root: {result}")
    return base_ref


def _build(engine: Engine, context: str, tag: str, buildargs: dict[str, str], recipe: str,
           cache_dir: Path) -> str:
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = cache_dir / f"build-{tag.replace('/', '_').replace(':', '_')}.log"
    labels = {LABEL_CREATOR: CREATOR, LABEL_CACHE: "subject", "io.saveexport.recipe": recipe}
    image_id = None
    with open(log_path, "w") as log_file:
        for chunk in engine.api.build(path=context, tag=tag, buildargs=buildargs, labels=labels, rm=True,
                                      forcerm=True, network_mode="host", decode=True, pull=False):
            if "stream" in chunk:
                log_file.write(chunk["stream"])
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                log_file.write(chunk["error"] + "\n")
                raise SubjectUnavailable(f"building {tag} failed: {chunk['error'].strip()}; full log: {log_path}")
    if image_id is None:
        image_id = engine.client.images.get(tag).id
    return image_id


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
