"""The engine matrix: what `--saveexport-engine` names, and how each engine comes and goes.

Values (repeatable):
  default                         DOCKER_HOST or the local socket (the default when none is given)
  unix://… tcp://… ssh://…        an engine that already runs there
  docker:SUITE[+containerd][+min-api=X.Y]
                                  Debian's docker.io of SUITE (bullseye, bookworm, trixie, sid), fetched
                                  into a cache and started as a private daemon; +containerd selects the
                                  containerd image store; +min-api=1.44 starts it with its oldest API
                                  raised (DOCKER_MIN_API_VERSION), as Docker 29 ships; +containerd-from=SUITE
                                  runs it on that suite's containerd (sid: 2.1.9) instead of the host's
  dockerd:PATH[+containerd][+min-api=X.Y]
                                  a private daemon from a dockerd binary or bundle directory you have
  podman                          Podman's Docker-compatible API service, started and stopped here
  podman:SUITE                    the podman of Debian SUITE (trixie, forky, sid, experimental), in a root of
                                  that suite made once into the cache (podman_roots.py)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .daemons import PodmanService, PrivateDockerd
from .engines import resolve_endpoint
from .errors import EngineUnavailable, UsageError
from .debian_mirror import Mirrors
from .podman_roots import SUITES as PODMAN_SUITES, PodmanRoot, fetch_root
from .provision import SUITES, Build, Containerd, fetch_containerd, fetch_suite, from_bundle


@dataclass(frozen=True)
class EngineSpec:
    raw: str
    kind: str  # endpoint | dockerd | podman
    id: str  # the test id, e.g. docker-26.1.5-overlay2
    endpoint: str | None = None
    build: Build | None = None
    containerd_store: bool = False
    min_api: str | None = None  # DOCKER_MIN_API_VERSION the daemon is started with (its API floor raised)
    containerd: Containerd | None = None  # +containerd-from=SUITE: that suite's containerd instead of the host's
    unavailable: str | None = None  # why its build could not be fetched: its tests fail with this line
    podman_root: PodmanRoot | None = None  # podman:SUITE: the suite's root its podman runs in

    @property
    def private(self) -> bool:
        return self.kind in ("dockerd", "podman")

    @property
    def variant(self) -> str:
        """What sets this engine apart from its build alone; part of its id and report label: the containerd
        it runs on when not the host's (docker-28.5.2-containerd-2.1.9: the containerd store on containerd
        2.1.9; docker-28.5.2-overlay2-containerd-2.1.9), a raised API floor."""
        parts = []
        if self.containerd:
            parts.append(self.containerd.version if self.containerd_store else f"containerd-{self.containerd.version}")
        if self.min_api:
            parts.append(f"min-api-{self.min_api}")
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {"raw": self.raw, "kind": self.kind, "id": self.id, "endpoint": self.endpoint,
                "build": self.build.to_dict() if self.build else None, "containerd_store": self.containerd_store,
                "min_api": self.min_api, "unavailable": self.unavailable,
                "containerd": self.containerd.to_dict() if self.containerd else None,
                "podman_root": self.podman_root.to_dict() if self.podman_root else None}


_MODIFIER = re.compile(r"\+(containerd|min-api=(\d+\.\d+)|containerd-from=([a-z]+))$")


def _modifiers(body: str) -> tuple[str, bool, str | None, str | None]:
    """SUITE or PATH, and the +containerd / +min-api=X.Y / +containerd-from=SUITE that follow it (in any
    order)."""
    containerd, min_api, containerd_from = False, None, None
    while match := _MODIFIER.search(body):
        if match.group(1) == "containerd":
            containerd = True
        elif match.group(2):
            min_api = match.group(2)
        else:
            containerd_from = match.group(3)
        body = body[:match.start()]
    if "+min-api" in body:
        raise UsageError(f"{body!r}: +min-api takes an API version, e.g. +min-api=1.44")
    if "+containerd-from" in body:
        raise UsageError(f"{body!r}: +containerd-from takes a Debian suite, e.g. +containerd-from=sid")
    return body, containerd, min_api, containerd_from


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
    if value.startswith("podman:"):
        suite = value[len("podman:"):]
        if suite not in PODMAN_SUITES:
            raise UsageError(f"podman:{suite}: unknown Debian suite; known: {', '.join(PODMAN_SUITES)} (plain "
                             f"`podman` is the host's own)")
        try:
            root = fetch_root(suite, mirrors=mirrors)
        except UsageError as exc:  # no mirror, not root, a failed mmdebstrap: its tests fail with this line
            return EngineSpec(raw, "podman", f"podman-{PODMAN_SUITES[suite]}", unavailable=str(exc))
        return EngineSpec(raw, "podman", f"podman-{root.version}", podman_root=root)
    for prefix in ("docker:", "dockerd:"):
        if value.startswith(prefix):
            body, containerd, min_api, containerd_from = _modifiers(value[len(prefix):])
            build, unavailable, other_containerd = None, None, None
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
            if containerd_from and containerd_from not in SUITES:  # a typo is a usage error, not a fetch failure
                raise UsageError(f"+containerd-from={containerd_from}: unknown Debian suite; known: {', '.join(SUITES)}")
            if containerd_from and unavailable is None:
                try:
                    other_containerd = fetch_containerd(containerd_from, mirrors=mirrors)
                except UsageError as exc:
                    unavailable = str(exc)
            store = "containerd" if containerd else "overlay2"
            spec = EngineSpec(raw, "dockerd", "", build=build, containerd_store=containerd, min_api=min_api,
                              unavailable=unavailable, containerd=other_containerd)
            wanted = f"containerd-from-{containerd_from}" if containerd_from and other_containerd is None else ""
            variant = "-".join(part for part in (wanted, spec.variant) if part)
            return dataclasses.replace(spec, id=f"docker-{version}-{store}" + (f"-{variant}" if variant else ""))
    raise UsageError(f"--saveexport-engine {raw!r} is not an engine: use default, unix://…, tcp://…, ssh://…, "
                     f"docker:SUITE[+containerd][+min-api=X.Y][+containerd-from=SUITE], dockerd:PATH[+…], podman or "
                     f"podman:SUITE")


def check_started(spec: EngineSpec, min_api_version: str, components: dict[str, str] | None = None) -> None:
    """An engine that ignored what its spec asked is not the engine its id names (dockerd before 25 has
    no DOCKER_MIN_API_VERSION and keeps its own floor; a dockerd joins a system containerd at
    /run/containerd/containerd.sock instead of starting the one asked for)."""
    serving = (components or {}).get("containerd", "")
    if spec.containerd and components is not None and not serving.startswith(spec.containerd.version):
        raise EngineUnavailable(f"{spec.raw}: the daemon runs on containerd {serving or '(none named)'}, not "
                                f"{spec.containerd.version} ({spec.containerd.source}): a containerd already "
                                f"running at /run/containerd/containerd.sock is joined instead; stop it or drop "
                                f"+containerd-from")
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
        service = PodmanService(index=index) if spec.podman_root is None else PodmanService(
            name=spec.id, root=spec.podman_root.path, index=index)
        endpoint = service.start()
        return endpoint, service.stop, service.log, service.store, service.cli()
    daemon = PrivateDockerd(name=spec.id, dockerd=spec.build.dockerd, index=index,
                            containerd_store=spec.containerd_store, min_api=spec.min_api,
                            containerd_bin=spec.containerd.bin if spec.containerd else None)
    endpoint = daemon.start()  # its name and slot may differ from those asked for (another run holds them)
    return endpoint, daemon.stop, daemon.log, daemon.data_root / "data", None
