"""Offline stand-ins built from Debian packages: a base root made with mmdebstrap and imported, then
a Dockerfile modelled on the official image.

Both are cached on the engine under ``saveexport-cache-*`` tags keyed by a hash of the recipe (the
assets and the suite), never by the mirror: the same packages from another mirror give the same
image, so choosing another mirror rebuilds nothing. Nor does the mirror stay in the image: the base
root keeps no sources, and each Dockerfile step that needs apt writes the source it is given
(the build argument DEBIAN_SOURCE) and removes it again in the same step. apt's proxy reaches
mmdebstrap through its environment and the builds through Docker's proxy build arguments, which
Docker leaves out of the image's history.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Callable

import docker.errors

from . import progress
from .debian_mirror import Mirrors, proxy_environment
from .engines import Engine
from .errors import SubjectUnavailable
from .isolation import CACHE_PREFIX, CREATOR, LABEL_CACHE, LABEL_CREATOR
from .provision import PARTIAL, drop_stale, cache_lock

# Which stand-in recipe (assets/<name>) replaces which image when it cannot be pulled.
STANDINS = {"postgres": "postgres", "mongo": "second", "saveexport-app": "app"}
LABEL_MIRROR = "io.saveexport.debian-mirror"  # where a cached build's packages came from
# a build's step as the classic builder streams it ("Step 3/12 : RUN ...") and Podman's ("STEP 3/12: RUN ...")
BUILD_STEP = re.compile(r"^\s*step\s+(\d+)(?:/(\d+))?\s*:\s*(.*?)\s*$", re.I | re.M)


def recipe_hash(standin: str, suite: str) -> str:
    digest = hashlib.sha256(f"{suite}\n".encode())
    with resources.as_file(resources.files("saveexport") / "assets") as assets:
        for folder in ("base", standin):
            for path in sorted((assets / folder).rglob("*")):
                if path.is_file():
                    digest.update(str(path.relative_to(assets)).encode())
                    digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_standin(engine: Engine, ref: str, standin: str, *, cache_dir: Path, suite: str, mirrors: Mirrors):
    from .subject import SubjectImage, repository_name, tag_of

    recipe = recipe_hash(standin, suite)
    cache_ref = f"{CACHE_PREFIX}{repository_name(ref)}:{tag_of(ref)}-{recipe}"
    note = (f"stand-in for {ref} built offline from Debian {suite} packages "
            f"(plugin/saveexport/assets/{standin})")

    def make() -> str:
        base_ref = ensure_base(engine, cache_dir=cache_dir, suite=suite, mirrors=mirrors)
        with resources.as_file(resources.files("saveexport") / "assets" / standin) as context:
            args = {"BASE": base_ref}
            if "DEBIAN_SOURCE" in (Path(context) / "Dockerfile").read_text():
                args.update(build_args(mirrors, suite, f"the {ref} stand-in's Dockerfile (apt-get)"))
            return build(engine, str(context), cache_ref, args, recipe, cache_dir, mirror=mirrors.used.get(suite))

    started = time.monotonic()
    image_id, built = cached(engine, cache_ref, cache_dir, make)
    if built:
        return SubjectImage(requested=ref, source_ref=cache_ref, obtained="built", image_id=image_id,
                            recipe=recipe, note=note + _from(mirrors.used.get(suite)),
                            build_seconds=round(time.monotonic() - started, 1))
    mirror_uri = (engine.api.inspect_image(image_id).get("Config") or {}).get("Labels", {}) or {}
    return SubjectImage(requested=ref, source_ref=cache_ref, obtained="cached-build", image_id=image_id,
                        recipe=recipe, note=note + _from_label(mirror_uri.get(LABEL_MIRROR)))


def cached(engine: Engine, cache_ref: str, cache_dir: Path, make: Callable[[], str], *,
           lock: str = "images") -> tuple[str, bool]:
    """(image id, built now?) of the image cached under `cache_ref`, made by `make` when the engine lacks it.

    The tag is the only mark of a whole image: the engine tags a build or an import only once it
    is complete, so a build killed halfway leaves nothing under it, and an image removed since the
    last run is simply made again. Engines side by side and two runs at once: one process makes it
    under the cache lock, the others wait and find it."""
    found = _image_id(engine, cache_ref)
    if found is not None:
        return found, False
    with cache_lock(cache_dir, lock):
        found = _image_id(engine, cache_ref)
        if found is not None:
            return found, False
        with progress.phase(f"making {cache_ref} on {engine.endpoint} (once per engine: cached under that tag)"):
            return make(), True


def _from(mirror) -> str:
    return f", packages from {mirror.uri}" if mirror else ""


def _from_label(uri: str | None) -> str:
    return f", packages from {uri} when it was built" if uri else ""


def _image_id(engine: Engine, ref: str) -> str | None:
    try:
        return engine.client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def build_args(mirrors: Mirrors, suite: str, needed_by: str) -> dict[str, str]:
    """DEBIAN_SOURCE (the sources line a Dockerfile step writes and removes again), and apt's proxy as
    Docker's predefined proxy arguments (kept out of the image's history)."""
    mirror = mirrors.for_suite(suite, needed_by)
    args = {"DEBIAN_SOURCE": f"deb {mirror.uri} {suite} main"}  # the image's own keyring checks it
    args.update(proxy_environment(mirrors, mirror.uri))
    return args


def make_root(suite: str, out: Path, mirrors: Mirrors, *, needed_by: str, log_path: Path, variant: str = "minbase",
              include: tuple[str, ...] = (), container_settings: bool = True) -> Path:
    """A Debian root as a tar (mmdebstrap), from the chosen mirror, through apt's proxy, keeping no sources.

    `container_settings`: the apt/dpkg settings of Debian's container images (assets/base)."""
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise SubjectUnavailable(
            "the subject image must be built offline but mmdebstrap is missing; install it "
            "('apt-get install mmdebstrap', or run scripts/engine up as root) or load the image yourself")
    mirror = mirrors.for_suite(suite, needed_by)  # before mmdebstrap runs: one line if no mirror has it
    argv = [tool, f"--variant={variant}", "--format=tar", *mirrors.mmdebstrap_options()]
    if include:
        argv.append("--include=" + ",".join(include))
    with resources.as_file(resources.files("saveexport") / "assets" / "base") as base:
        if container_settings:
            argv += [*(f"--aptopt={base / name}" for name in
                       ("docker-clean", "docker-no-recommends", "docker-no-languages", "docker-gzip-indexes")),
                     f"--dpkgopt={base / 'dpkg-excludes'}"]
        # the build host's name, resolver and mirror do not belong in an image; the engine mounts its own
        # name and resolver, and each build step is given its source
        # (the last hook mmdebstrap runs: extract variants run no customize hooks)
        hook = "extract" if variant == "extract" else "customize"
        argv += [f'--{hook}-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"; '
                 'if [ -d "$1/etc/apt" ]; then : > "$1/etc/apt/sources.list"; fi',
                 suite, str(out), mirror.source_line(suite)]
        env = dict(os.environ, **proxy_environment(mirrors, mirror.uri))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log_file:
            returncode = progress.run_logged(argv, log_file, pick=progress.mmdebstrap_stage, env=env)
    if returncode != 0:
        last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise SubjectUnavailable(f"mmdebstrap could not make a Debian {suite} root from {mirror.uri} ({last[0]}); "
                                 f"full log: {log_path}")
    return out


def ensure_base(engine: Engine, *, cache_dir: Path, suite: str, mirrors: Mirrors) -> str:
    """A minimal Debian root (the shape of debian:<suite>-slim), imported as an image once."""
    recipe = recipe_hash("base", suite)
    base_ref = f"{CACHE_PREFIX}debian:{suite}-{recipe}"

    def make() -> str:
        cache_dir.mkdir(parents=True, exist_ok=True)
        drop_stale(cache_dir, "base-")  # roots of killed runs (hundreds of MB each); nobody else writes them now
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=PARTIAL + "base-") as tmp:
            root_tar = make_root(suite, Path(tmp) / "root.tar", mirrors,
                                 needed_by="the stand-in's base root (mmdebstrap)", log_path=cache_dir / "mmdebstrap.log")
            repository, tag = base_ref.rsplit(":", 1)
            mirror = mirrors.used.get(suite)
            changes = ['CMD ["bash"]'] + ([f'LABEL {LABEL_MIRROR}="{mirror.uri}"'] if mirror else [])
            progress.update(f"importing the root ({root_tar.stat().st_size / 1e6:.0f} MB) into the engine",
                            step=True)
            result = engine.api.import_image_from_file(str(root_tar), repository=repository, tag=tag, changes=changes)
            if "error" in str(result).lower() and "sha256:" not in str(result):
                raise SubjectUnavailable(f"the engine refused the base root: {result}")
        return engine.api.inspect_image(base_ref)["Id"]

    cached(engine, base_ref, cache_dir, make, lock="base")
    return base_ref


def build(engine: Engine, context: str, tag: str, buildargs: dict[str, str], recipe: str, cache_dir: Path,
          mirror=None) -> str:
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = cache_dir / f"build-{tag.replace('/', '_').replace(':', '_')}.log"
    labels = {LABEL_CREATOR: CREATOR, LABEL_CACHE: "subject", "io.saveexport.recipe": recipe}
    if mirror is not None:
        labels[LABEL_MIRROR] = mirror.uri
    image_id = None
    step = None
    with open(log_path, "w") as log_file:
        for chunk in engine.api.build(path=context, tag=tag, buildargs=buildargs, labels=labels, rm=True,
                                      forcerm=True, network_mode="host", decode=True, pull=False):
            if "stream" in chunk:
                log_file.write(chunk["stream"])
                log_file.flush()  # a person (or a test) following the build sees each step as it starts
                step = step_of(chunk["stream"]) or step
            if step:  # on every chunk: a step the rate limit held back shows once its second is up
                progress.update(step, step=True)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                log_file.write(chunk["error"] + "\n")
                raise SubjectUnavailable(f"building {tag} failed: {chunk['error'].strip()}; full log: {log_path}")
    if image_id is None:
        image_id = engine.client.images.get(tag).id
    return image_id


def step_of(stream: str) -> str | None:
    """The last step a piece of a build's stream starts, as "step 3 of 12: RUN ...", if any."""
    found = BUILD_STEP.findall(stream)
    if not found:
        return None
    number, total, instruction = found[-1]
    return f"step {number}{f' of {total}' if total else ''}: {instruction[:60]}"
