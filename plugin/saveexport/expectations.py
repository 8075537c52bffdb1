"""What legitimately differs between engines, encoded by kind, version and image store.

Each function answers for one engine what the experiments then assert; the evidence behind each rule
is in the committed cross-engine report (reports/matrix/).
"""

from __future__ import annotations

import re

from .engines import EngineFacts


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
    """Podman's compat import takes the repository but not the tag: `import x.tar name:v1` gives name:latest."""
    return facts.kind != "podman"


def built_layer_compression(facts: EngineFacts) -> str:
    """How `save` writes a layer the engine built itself. The containerd store keeps layers as blobs in its
    content store and saves them as they are: gzip after a build (or a pull). Graphdrivers and Podman
    keep unpacked layers and write each as a plain tar. (A layer that arrived by `load` keeps the
    compression it had in the loaded archive: measured on 28.5.2 with the containerd store.)"""
    return "gzip" if facts.kind == "docker" and facts.image_store == "containerd" else "none"
