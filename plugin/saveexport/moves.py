"""Moving an image between engines: the air-gap user's case, archive made on one engine (or by skopeo),
loaded on another.

The image is small and each source engine builds it itself, so each archive carries that engine's own
way of storing layers: a root of the host's own sh, cat, rm, ln and mkdir (imported), then a layer with
files and a symlink, then one that deletes a file (a whiteout), and a command that prints a known line.
Archives are made once per distinct writer (an engine's build and image store, or skopeo) into a move
directory, each with a small JSON of what its source knew of the image; the loads read them from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import docker.errors

from .archives import Archive
from .archives.summary import inspect_archive
from .engines import Engine, EngineFacts
from .isolation import RunScope
from .operations import Operations, Outcome

LINE = "saveexport moved me"
TOOLS = ("/bin/sh", "/bin/cat", "/bin/rm", "/bin/ln", "/bin/mkdir")
DOCKERFILE = """FROM {base}
RUN mkdir -p /move && echo "{line}" > /move/line && echo doomed > /move/doomed && ln -s line /move/link
RUN rm /move/doomed
CMD ["/bin/cat", "/move/link"]
"""
SKOPEO_KINDS = {  # archive kind -> skopeo copy's destination transport and options
    "skopeo-docker-archive": ("docker-archive", []),
    "skopeo-oci-archive-gzip": ("oci-archive", ["--dest-compress-format", "gzip"]),
    "skopeo-oci-archive-zstd": ("oci-archive", ["--dest-compress-format", "zstd"]),
}


def tools_root(path: Path, tools: tuple[str, ...] = TOOLS) -> Path:
    """The host's sh, cat, rm, ln and mkdir (or `tools`) with the libraries they need, as a tar: a base to
    build on that needs no registry and no mirror (engines run on this host, so its binaries run in them)."""
    wanted: set[str] = set()
    for tool in tools:
        wanted.add(tool)
        proc = subprocess.run(["ldd", tool], capture_output=True, text=True, check=False)
        wanted |= {word for line in proc.stdout.splitlines() for word in line.split() if word.startswith("/")}
    with tarfile.open(path, "w") as tar:
        for name in sorted(wanted):
            tar.add(os.path.realpath(name), arcname=name.lstrip("/"))
    return path


def writer_of(facts: EngineFacts) -> str:
    """The engine as a writer of archives: its build, image store and the containerd it runs on when that
    is not the host's (a raised API floor writes the same)."""
    store = "containerd" if facts.image_store == "containerd" else facts.storage_driver
    other = re.sub(r"-?min-api-[\d.]+", "", facts.variant)
    return (f"{facts.kind}-{facts.version.split('+')[0]}" + (f"-{store}" if facts.kind == "docker" else "")
            + (f"-{other}" if other else ""))


@dataclass
class MoveArchive:
    writer: str
    kind: str  # docker-save | podman-oci-archive | skopeo-…
    file: str  # relative to the move directory
    source_engine: str
    ref: str
    image_id: str
    diff_ids: list[str]
    bytes: int = 0
    layout: str = ""
    layer_compression: list[str] = field(default_factory=list)
    manifest_digest: str = ""
    config_digest: str = ""
    made_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def made(move_dir: Path) -> list[MoveArchive]:
    """Every archive in the move directory whose making finished (its JSON is written last)."""
    return [MoveArchive(**json.loads(meta.read_text())) for meta in sorted(move_dir.glob("*/*.json"))]


def claim_writer(move_dir: Path, writer: str, engine_label: str) -> str | None:
    """The engine that already writes for this writer, or None when this one claims it now."""
    move_dir.mkdir(parents=True, exist_ok=True)
    try:
        (move_dir / writer).mkdir()
    except FileExistsError:
        owner = move_dir / writer / ".owner"
        return owner.read_text() if owner.exists() else "another engine"
    (move_dir / writer / ".owner").write_text(engine_label)
    return None


def build_image(engine: Engine, ops: Operations, scope: RunScope, workdir: Path) -> str:
    """The move image, built by the engine itself on an imported tools root; returns its reference."""
    base = scope.ref("move-base", "latest")
    imported = ops.import_(tools_root(workdir / "tools.tar"), base)
    if imported.failed:
        raise MoveError(f"importing the tools root failed: {imported.error_type}: {imported.message}")
    ref = scope.ref("move", "1")
    built = ops.build(DOCKERFILE.format(base=base, line=LINE), ref)
    if built.failed:
        raise MoveError(f"building the move image failed: {built.error_type}: {built.message}")
    return ref


class MoveError(Exception):
    """An archive could not be made; recorded as the outcome, never a crash."""


def describe(path: Path, archive: MoveArchive) -> MoveArchive:
    """Bytes, layout and layer compression as the analyser reads them."""
    summary = inspect_archive(Archive(path, hash_layers=False))
    archive.bytes = path.stat().st_size
    archive.layout = str(summary.get("layout"))
    images = summary.get("images") or []
    if images:
        archive.layer_compression = [layer.get("compression", "?") for layer in images[0].get("layers") or []]
        archive.manifest_digest = str(images[0].get("manifest_digest") or "")
        archive.config_digest = str(images[0].get("id") or "")
    return archive


def record(move_dir: Path, archive: MoveArchive) -> MoveArchive:
    meta = move_dir / archive.file
    meta = meta.with_suffix(".json")
    partial = meta.with_name(".partial-" + meta.name)
    partial.write_text(json.dumps(archive.to_dict(), indent=1))
    os.replace(partial, meta)
    return archive


def skopeo_copy(save: Path, target: Path, kind: str, ref: str) -> None:
    """skopeo converts a file, never talks to a daemon (bookworm's speaks API 1.22, which Docker 25+ refuse)."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise MoveError("skopeo is not installed; 'apt-get install skopeo' (scripts/engine tools does it)")
    transport, options = SKOPEO_KINDS[kind]
    dest = f"{transport}:{target}:{ref}" if transport == "docker-archive" else f"{transport}:{target}:{ref.rsplit(':', 1)[-1]}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([skopeo, "--tmpdir", tmp, "copy", "--quiet", *options, f"docker-archive:{save}", dest],
                              capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        raise MoveError(f"skopeo copy to {kind} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")


def podman_save(cli: tuple[list[str], dict[str, str]], ref: str, target: Path) -> None:
    """`podman save --format oci-archive` with the podman CLI against the service's own store."""
    argv, env = cli
    with open(target, "wb") as out:  # by stdout: a root's podman sees no host path
        proc = subprocess.run([*argv, "save", "--format", "oci-archive", ref], stdout=out, stderr=subprocess.PIPE,
                              text=True, timeout=300, env=env, check=False)
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        raise MoveError(f"podman save --format oci-archive failed: "
                        f"{(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")


def podman_load(cli: tuple[list[str], dict[str, str]], path: Path, timeout_s: float = 300) -> Outcome:
    """`podman load -i` with the podman CLI on the service's own store: Podman's other way in, beside its
    compat API. Its words are kept as the API's are; a timeout is an outcome, like a refusal."""
    argv, env = cli
    started = time.monotonic()
    try:
        with open(path, "rb") as archive:  # by stdin: a root's podman sees no host path
            proc = subprocess.run([*argv, "load"], stdin=archive, capture_output=True, text=True, timeout=timeout_s,
                                  env=env, check=False)
    except subprocess.TimeoutExpired:
        return Outcome("podman load", False, error_type="TimeoutExpired",
                       message=f"podman load did not finish in {timeout_s:.0f} s",
                       duration_s=round(time.monotonic() - started, 3), result={"loaded_refs": [], "loaded_ids": []})
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    refs = [ref.strip() for line in lines if line.startswith("Loaded image:")
            for ref in line.split(":", 1)[1].split(",") if ref.strip()]
    result = {"daemon_lines": lines, "loaded_refs": refs, "loaded_ids": [], "exit_status": proc.returncode}
    seconds = round(time.monotonic() - started, 3)
    if proc.returncode != 0:
        return Outcome("podman load", False, error_type=f"exit status {proc.returncode}",
                       message=(proc.stderr.strip().splitlines() or ["?"])[-1][:500], duration_s=seconds, result=result)
    return Outcome("podman load", True, message="\n".join(lines) or None, duration_s=seconds,
                   bytes=path.stat().st_size, result=result)


def load_into(ops: Operations, scope: RunScope, archive: MoveArchive, path: Path,
              load: Callable[[Path], Outcome] | None = None) -> dict[str, Any]:
    """Load one archive into the target (by its API, or by `load`: the podman CLI); what it loaded as, whether
    it is the same image, whether it runs. Whatever the load made is removed again."""
    started = time.monotonic()
    present = {image["Id"] for image in ops.api.images(all=True)}
    loaded = (load or ops.load)(path)
    cell: dict[str, Any] = {"load": loaded.to_dict(), "seconds": round(time.monotonic() - started, 2)}
    refs = loaded.result.get("loaded_refs") or []
    ids = loaded.result.get("loaded_ids") or []
    # an engine may load an image without saying so, or without a name: what is new on it is what it loaded
    new = sorted({image["Id"] for image in ops.api.images(all=True)} - present)
    for image_id in new:
        scope.track_image(image_id)
    image = (refs or ids or new or [None])[0]
    cell["named"] = bool(refs)
    if loaded.failed or image is None:
        cell["outcome"] = "refused" if loaded.failed else "loaded nothing"
        return cell
    try:
        attrs = ops.inspect(image)
    except docker.errors.DockerException as exc:
        cell.update(outcome="loaded nothing", why=str(exc)[:300])
        return cell
    scope.track_image(attrs["Id"])
    cell["names"] = refs
    cell["image_id"] = attrs["Id"]
    cell["id_is"] = ("the archive's config digest" if attrs["Id"] == archive.config_digest else
                     "the archive's manifest digest" if archive.manifest_digest and attrs["Id"] == archive.manifest_digest
                     else "an id of its own")
    cell["same_id_as_source"] = attrs["Id"] == archive.image_id
    cell["layers_intact"] = list((attrs.get("RootFS") or {}).get("Layers") or []) == list(archive.diff_ids)
    run = ops.run_probe(attrs["Id"], f"move-{archive.writer}-{archive.kind}"[:60], settle_s=2.0)
    cell["run"] = run.to_dict()
    printed = LINE in "\n".join(run.result.get("logs") or [])
    cell["outcome"] = "loads and runs" if run.ok and printed else "loads, cannot run"
    for name in refs:
        ops.untag(name)
    for image_id in {attrs["Id"], *new}:
        try:
            ops.api.remove_image(image_id, force=True)
        except docker.errors.DockerException:
            pass
    return cell
