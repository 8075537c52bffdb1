"""The engine matrix: what `--saveexport-engine` names, and how each engine comes and goes.

Values (repeatable):
  default                         DOCKER_HOST or the local socket (the default when none is given)
  unix://… tcp://… ssh://…        an engine that already runs there
  docker:SUITE[+containerd][+min-api=X.Y]
                                  Debian's docker.io of SUITE (bullseye, bookworm, trixie, sid), fetched
                                  into a cache and started as a private daemon; +containerd selects the
                                  containerd image store; +min-api=1.44 starts it with its oldest API
                                  raised (DOCKER_MIN_API_VERSION), as Docker 29 ships
  dockerd:PATH[+containerd][+min-api=X.Y]
                                  a private daemon from a dockerd binary or bundle directory you have
  podman                          Podman's Docker-compatible API service, started and stopped here
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .daemons import PodmanService, PrivateDockerd
from .engines import resolve_endpoint
from .errors import EngineUnavailable, UsageError
from .debian_mirror import Mirrors
from .provision import SUITES, Build, fetch_suite, from_bundle


@dataclass(frozen=True)
class EngineSpec:
    raw: str
    kind: str  # endpoint | dockerd | podman
    id: str  # the test id, e.g. docker-26.1.5-overlay2
    endpoint: str | None = None
    build: Build | None = None
    containerd_store: bool = False
    min_api: str | None = None  # DOCKER_MIN_API_VERSION the daemon is started with (its API floor raised)
    unavailable: str | None = None  # why its build could not be fetched: its tests fail with this line

    @property
    def private(self) -> bool:
        return self.kind in ("dockerd", "podman")

    @property
    def variant(self) -> str:
        """What sets this engine apart from its build alone; part of its id and report label."""
        return f"min-api-{self.min_api}" if self.min_api else ""

    def to_dict(self) -> dict:
        return {"raw": self.raw, "kind": self.kind, "id": self.id, "endpoint": self.endpoint,
                "build": self.build.to_dict() if self.build else None, "containerd_store": self.containerd_store,
                "min_api": self.min_api, "unavailable": self.unavailable}


_MODIFIER = re.compile(r"\+(containerd|min-api=(\d+\.\d+))$")


def _modifiers(body: str) -> tuple[str, bool, str | None]:
    """SUITE or PATH, and the +containerd / +min-api=X.Y that follow it (in any order)."""
    containerd, min_api = False, None
    while match := _MODIFIER.search(body):
        if match.group(1) == "containerd":
            containerd = True
        else:
            min_api = match.group(2)
        body = body[:match.start()]
    if "+min-api" in body:
        raise UsageError(f"{body!r}: +min-api takes an API version, e.g. +min-api=1.44")
    return body, containerd, min_api


def parse(raw: str, default_endpoint: str | None = None, mirrors: Mirrors | None = None) -> EngineSpec:
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
            body, containerd, min_api = _modifiers(value[len(prefix):])
            build, unavailable = None, None
            if prefix == "dockerd:":
                build = from_bundle(body)
                version = build.version
            elif body not in SUITES:
                raise UsageError(f"unknown Debian suite {body!r}; known: {', '.join(SUITES)}")
            else:
                try:
                    build = fetch_suite(body, mirrors=mirrors)
                    version = build.version
                except UsageError as exc:  # a mirror without the suite, a failed fetch: its tests fail with this line
                    unavailable, version = str(exc), SUITES[body]
            store = "containerd" if containerd else "overlay2"
            spec_id = f"docker-{version}-{store}" + (f"-min-api-{min_api}" if min_api else "")
            return EngineSpec(raw, "dockerd", spec_id, build=build, containerd_store=containerd, min_api=min_api,
                              unavailable=unavailable)
    raise UsageError(f"--saveexport-engine {raw!r} is not an engine: use default, unix://…, tcp://…, ssh://…, "
                     f"docker:SUITE[+containerd][+min-api=X.Y], dockerd:PATH[+containerd][+min-api=X.Y] or podman")


def check_started(spec: EngineSpec, min_api_version: str) -> None:
    """An engine that ignored what its spec asked is not the engine its id names (dockerd before 25 has
    no DOCKER_MIN_API_VERSION and keeps its own floor)."""
    if spec.min_api and min_api_version != spec.min_api:
        raise EngineUnavailable(f"{spec.raw}: the daemon's oldest API is {min_api_version}, not {spec.min_api}: "
                                f"this build ignores DOCKER_MIN_API_VERSION (Docker 25 and later honour it); "
                                f"drop +min-api or use a newer build")


def start(spec: EngineSpec, index: int):
    """Start what the spec needs; returns (endpoint, stopper or None, its log or None, its storage's root
    or None, the argv and environment of a CLI on its store or None). The root is known only for engines
    started here: the suite alone writes there."""
    if spec.unavailable:
        raise EngineUnavailable(spec.unavailable)
    if spec.kind == "endpoint":
        return spec.endpoint, None, None, None, None
    if spec.kind == "podman":
        service = PodmanService()
        endpoint = service.start()
        return endpoint, service.stop, service.log, service.data_root / "storage", service.cli()
    daemon = PrivateDockerd(name=spec.id, dockerd=spec.build.dockerd, index=index,
                            containerd_store=spec.containerd_store, min_api=spec.min_api)
    endpoint = daemon.start()  # its name and slot may differ from those asked for (another run holds them)
    return endpoint, daemon.stop, daemon.log, daemon.data_root / "data", None
