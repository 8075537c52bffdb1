"""The engine matrix: what `--saveexport-engine` names, and how each engine comes and goes.

Values (repeatable):
  default                         DOCKER_HOST or the local socket (the default when none is given)
  unix://… tcp://… ssh://…        an engine that already runs there
  docker:SUITE[+containerd]       Debian's docker.io of SUITE (bullseye, bookworm, trixie, sid), fetched
                                  into a cache and started as a private daemon; +containerd selects the
                                  containerd image store
  dockerd:PATH[+containerd]       a private daemon from a dockerd binary or bundle directory you have
  podman                          Podman's Docker-compatible API service, started and stopped here
"""

from __future__ import annotations

from dataclasses import dataclass

from .daemons import PodmanService, PrivateDockerd
from .engines import resolve_endpoint
from .errors import UsageError
from .provision import Build, fetch_suite, from_bundle


@dataclass(frozen=True)
class EngineSpec:
    raw: str
    kind: str  # endpoint | dockerd | podman
    id: str  # the test id, e.g. docker-26.1.5-overlay2
    endpoint: str | None = None
    build: Build | None = None
    containerd_store: bool = False

    @property
    def private(self) -> bool:
        return self.kind in ("dockerd", "podman")

    def to_dict(self) -> dict:
        return {"raw": self.raw, "kind": self.kind, "id": self.id, "endpoint": self.endpoint,
                "build": self.build.to_dict() if self.build else None, "containerd_store": self.containerd_store}


def parse(raw: str, default_endpoint: str | None = None) -> EngineSpec:
    value = raw.strip()
    if value in ("", "default"):
        endpoint = resolve_endpoint(default_endpoint)
        return EngineSpec(raw, "endpoint", "default", endpoint=endpoint)
    if value.startswith(("unix://", "tcp://", "ssh://", "http://", "https://")):
        return EngineSpec(raw, "endpoint", value.split("://", 1)[1].strip("/").replace("/", "_")[-40:],
                          endpoint=value)
    if value == "podman":
        return EngineSpec(raw, "podman", "podman")
    for prefix in ("docker:", "dockerd:"):
        if value.startswith(prefix):
            body = value[len(prefix):]
            containerd = body.endswith("+containerd")
            body = body.removesuffix("+containerd")
            build = fetch_suite(body) if prefix == "docker:" else from_bundle(body)
            store = "containerd" if containerd else "overlay2"
            return EngineSpec(raw, "dockerd", f"docker-{build.version}-{store}", build=build,
                              containerd_store=containerd)
    raise UsageError(f"--saveexport-engine {raw!r} is not an engine: use default, unix://…, tcp://…, ssh://…, "
                     f"docker:SUITE[+containerd], dockerd:PATH[+containerd] or podman")


def start(spec: EngineSpec, index: int):
    """Start what the spec needs; returns (endpoint, stopper or None)."""
    if spec.kind == "endpoint":
        return spec.endpoint, None
    if spec.kind == "podman":
        service = PodmanService()
        return service.start(), service.stop
    daemon = PrivateDockerd(name=spec.id, dockerd=spec.build.dockerd, index=index,
                            containerd_store=spec.containerd_store)
    return daemon.start(), daemon.stop
