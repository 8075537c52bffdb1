"""What legitimately differs between engines, encoded by kind, version and image store.

Each rule answers for one engine what the experiments then assert; the evidence behind each rule
is in the committed cross-engine report (reports/matrix/). Experiments ask through `expect`, which
also says where the answer stands: measured (the engine's version was measured, or lies between two
measured versions that behave alike) or extrapolated (newer or older than any measured, between two
that behave differently, or a kind and store never measured). An extrapolated engine still runs
every test; a mismatch fails with the rule, the versions it was measured on, the engine and what was
seen, and the report lists it as a new behaviour.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

from .engines import EngineFacts

# The engines every rule below was measured on (the committed matrix), by kind and image store.
MEASURED_ON: dict[tuple[str, str], tuple[str, ...]] = {
    ("docker", "graphdriver"): ("20.10.24", "26.1.5", "28.5.2"),
    ("docker", "containerd"): ("28.5.2",),
    ("podman", "graphdriver"): ("4.3.1", "5.4.2", "5.8.6"),
}
# Docker's containerd image store keeps images in containerd itself: which containerd releases (major.minor)
# the rules were measured on with it. (A graphdriver uses containerd only to run containers.)
MEASURED_CONTAINERD: tuple[str, ...] = ("1.6", "2.1")  # 2.1: sid's 2.1.9, every rule as on 1.6.20
USED: list[dict[str, Any]] = []  # what `expect` answered in this process; the plugin puts it in the evidence


@dataclasses.dataclass(frozen=True)
class Expected:
    rule: str
    value: Any
    engine: str
    measured_on: tuple[str, ...]
    extrapolated: str  # why the answer is extrapolated for this engine; "" when measured

    def to_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), measured_on=list(self.measured_on))

    def check(self, seen: Any, what: str) -> None:
        if seen != self.value:
            raise UnexpectedBehaviour(self, seen, what)


class UnexpectedBehaviour(AssertionError):
    """An engine did what no measured engine of its kind, version and store did."""

    def __init__(self, expected: Expected, seen: Any, what: str):
        kind_store = "measured on " + (", ".join(expected.measured_on) or "no engine of this kind and store")
        line = (f"{what}: {expected.engine} gave {seen!r}; the rule {expected.rule} expects {expected.value!r} "
                f"({kind_store})" + (f"; extrapolated here: {expected.extrapolated}" if expected.extrapolated else ""))
        super().__init__(line)
        self.record = dict(expected.to_dict(), seen=seen, what=what, line=line)
        self.records = [self.record]

    @classmethod
    def several(cls, errors: list[UnexpectedBehaviour]) -> UnexpectedBehaviour:
        """One failure for a test that asserts many cells: a line per cell that differed."""
        combined = cls.__new__(cls)
        AssertionError.__init__(combined, f"{len(errors)} cells differ from what was measured:\n"
                                + "\n".join(str(error) for error in errors))
        combined.record, combined.records = errors[0].record, [error.record for error in errors]
        return combined


def expect(rule: Callable[[EngineFacts], Any], facts: EngineFacts) -> Expected:
    measured = MEASURED_ON.get((facts.kind, facts.image_store), ())
    expected = Expected(rule.__name__, rule(facts), facts.label, measured, standing(rule, facts, measured))
    USED.append(expected.to_dict())
    return expected


def standing(rule: Callable[[EngineFacts], Any], facts: EngineFacts, measured: tuple[str, ...]) -> str:
    """"" when the rule's answer for this engine rests on measurement; otherwise why it is extrapolated."""
    if not measured:
        return f"no {facts.kind} engine with the {facts.image_store} image store was measured"
    containerd = (facts.components or {}).get("containerd", "")
    if facts.kind == "docker" and facts.image_store == "containerd" and containerd:
        release = ".".join(re.findall(r"\d+", containerd)[:2])
        if release and release not in MEASURED_CONTAINERD:
            return (f"its image store is containerd {containerd.split('+')[0]}; the store was measured on containerd "
                    f"{', '.join(MEASURED_CONTAINERD)} only")
    version = version_tuple(facts.version)
    ordered = sorted(measured, key=version_tuple)
    if any(version_tuple(m) == version for m in ordered):
        return ""
    if version > version_tuple(ordered[-1]):
        return f"{facts.version} is newer than the newest measured ({ordered[-1]})"
    if version < version_tuple(ordered[0]):
        return f"{facts.version} is older than the oldest measured ({ordered[0]})"
    lower = max((m for m in ordered if version_tuple(m) < version), key=version_tuple)
    upper = min((m for m in ordered if version_tuple(m) > version), key=version_tuple)
    if rule(dataclasses.replace(facts, version=lower)) != rule(dataclasses.replace(facts, version=upper)):
        return f"{facts.version} lies between {lower} and {upper}, which behave differently"
    return ""


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("-")[0])[:3])


def repeated_saves_identical(facts: EngineFacts) -> bool:
    """Two `docker save` of one image give the same bytes on Docker 20.10 and with the containerd store;
    Docker 25+ with a graphdriver writes an OCI layout whose bytes differ from save to save (measured on
    26.1.5 and 28.5.2: same size, same tags, different sha256)."""
    if facts.kind != "docker":
        return True
    return version_tuple(facts.version) < (25,) or facts.image_store == "containerd"


def save_layout(facts: EngineFacts) -> str:
    """Docker 25 changed `docker save` from the legacy layout to the OCI image layout; Podman's compat API
    saves a docker-archive (the legacy layout)."""
    if facts.kind == "podman" or version_tuple(facts.version) < (25,):
        return "docker-legacy"
    return "oci-image-layout"


# Podman 4.3's Docker-compatible API, measured here (podman 4.3.1, Debian bookworm):
def save_by_repository_name_ok(facts: EngineFacts) -> bool:
    """Docker saves every tag of a repository named without a tag; Podman reads NAME as docker.io/library/NAME
    and answers 500 "image not known"."""
    return facts.kind != "podman"


def import_keeps_tag(facts: EngineFacts) -> bool:
    """Podman 4.3's compat import takes the repository but not the tag: `import x.tar name:v1` gives
    name:latest. Podman 5.4.2 and 5.8.6 keep the tag, as Docker does."""
    return facts.kind != "podman" or version_tuple(facts.version) >= (5,)


def no_command_refused_at(facts: EngineFacts) -> str:
    """Where an image with no command (an import) fails to run. Docker and Podman 4.3 refuse the container
    at create ("no command specified"; Podman: "no command or entrypoint provided, and no CMD or ENTRYPOINT
    from image"); Podman 5.4.2 and 5.8.6 create it and fail at start, in the runtime ("runc create failed: … exec:
    \"\": executable file not found in $PATH")."""
    return "refused-at-start" if facts.kind == "podman" and version_tuple(facts.version) >= (5,) else "refused-at-create"


def built_layer_compression(facts: EngineFacts) -> str:
    """How `save` writes a layer the engine built itself. The containerd store keeps layers as blobs in its
    content store and saves them as they are: gzip after a build (or a pull). Graphdrivers and Podman
    keep unpacked layers and write each as a plain tar. (A layer that arrived by `load` keeps the
    compression it had in the loaded archive: measured on 28.5.2 with the containerd store.)"""
    return "gzip" if facts.kind == "docker" and facts.image_store == "containerd" else "none"


# Archives with an OCI layout and no manifest.json (measured here on every engine of the matrix).
OCI_ONLY = frozenset({"podman-oci-archive", "skopeo-oci-archive-gzip", "skopeo-oci-archive-zstd"})


def move_outcome(archive_kind: str, writer: str) -> Callable[[EngineFacts], str]:
    """What a target engine makes of one archive of the move image (moves.py): loads and runs, loads but
    cannot run, loaded nothing, or refused.

    Every docker-archive (any Docker's save, Podman's, skopeo's) loads and runs everywhere. An OCI archive
    without manifest.json: Podman loads and runs it; Docker with a graphdriver refuses it (20.10.24 to
    28.5.2: "open …/blobs/json: no such file or directory", the legacy loader looking for a manifest.json);
    Docker's containerd store loads Podman's (named) and, from skopeo's, whose index names the image only
    by its tag, loads nothing it lists, without an error."""
    def rule(facts: EngineFacts) -> str:
        if archive_kind not in OCI_ONLY or facts.kind == "podman":
            return "loads and runs"
        if facts.image_store == "containerd":
            return "loads and runs" if archive_kind == "podman-oci-archive" else "loaded nothing"
        return "refused"

    rule.__name__ = f"move_outcome[{archive_kind} by {writer}]"
    return rule


def podman_load_agrees(archive_kind: str, writer: str) -> Callable[[EngineFacts], bool]:
    """Whether `podman load` (the CLI) makes of an archive what Podman's compat API load makes of it: the same
    outcome, the same names, the same image id. Both go through libimage; measured alike for every archive
    of the move matrix on 4.3.1 (names included: skopeo's OCI archive, whose index names the image by its
    tag alone, is `localhost/1:latest` both ways)."""
    def rule(facts: EngineFacts) -> bool:
        return True

    rule.__name__ = f"podman_load_agrees[{archive_kind} by {writer}]"
    return rule


def storage_kept_after(operation: str) -> Callable[[EngineFacts], list[str]]:
    """Which kinds of object an engine's own storage keeps after one operation on a tiny image, once the
    container is removed (experiments/test_storage_kept.py). Measured: after `export`, Docker 26.1.5 with
    overlay2 keeps the container's read-write layer record and two driver directories (its layer and its
    init layer); 20.10.24, 28.5.2, the containerd store and Podman keep nothing. Upstream: moby/moby#48516
    ("docker export container creates orphan layers", reported on 27.2.1, open). Importing an image and
    removing it keeps, on Podman 4.3.1, 5.4.2 and 5.8.6, the whole archive it was sent: the compat API's
    import (`/images/create?fromSrc=-`) writes it to `api_load.tar…` in the image-copy temp dir and never
    removes it (upstream: podman#28531, open), so every `docker import` into a Podman leaves its archive's
    size in /var/tmp by default; the plugin stages those copies in the store's `tmp/` so the census sees
    them. Docker keeps nothing after an import. Loading an image and removing it keeps nothing anywhere
    (Podman's load removes its copy; Podman 5.8.6's empty deletion staging directory, overlay/tempdirs,
    is the store's bookkeeping, storage.STAGING)."""
    def rule(facts: EngineFacts) -> list[str]:
        exports_leak = (facts.kind == "docker" and facts.image_store == "graphdriver"
                        and (26,) <= version_tuple(facts.version) < (28,))
        if operation.startswith("export") and exports_leak:
            return ["driver-dir", "rw-layer"]
        return ["tmp"] if operation.startswith("import") and facts.kind == "podman" else []

    rule.__name__ = f"storage_kept_after[{operation}]"
    return rule
