"""An Engine: a connected Docker SDK client plus the facts a report must state about it."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions

from .errors import EngineUnavailable

# Saving or loading an image of hundreds of MB takes longer than docker-py's 60 s default.
DEFAULT_TIMEOUT_S = 900
PING_TIMEOUT_S = 5
DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class EngineFacts:
    kind: str  # "docker" or "podman"
    version: str
    api_version: str
    min_api_version: str
    os: str
    arch: str
    kernel: str
    storage_driver: str
    image_store: str  # "graphdriver" (classic) or "containerd" (containerd snapshotter)
    endpoint: str
    components: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A test-id friendly name, e.g. docker-20.10.24-overlay2."""
        store = "containerd" if self.image_store == "containerd" else self.storage_driver
        version = self.version.split("+")[0]
        return f"{self.kind}-{version}-{store}" if self.kind == "docker" else f"{self.kind}-{version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label
        return data


def resolve_endpoint(endpoint: str | None) -> str:
    return endpoint or os.environ.get("DOCKER_HOST") or DEFAULT_ENDPOINT


class Engine:
    """A client with facts; operations live in operations.py."""

    def __init__(self, client: docker.DockerClient, endpoint: str):
        self.client = client
        self.api = client.api
        self.endpoint = endpoint
        self.spec = None  # the matrix.EngineSpec this engine was started or reached from, when known
        self._facts: EngineFacts | None = None

    @classmethod
    def connect(cls, endpoint: str | None = None, timeout: int = DEFAULT_TIMEOUT_S) -> Engine:
        """Connect, failing within seconds with one clear line when nothing answers."""
        endpoint = resolve_endpoint(endpoint)
        probe = None
        try:
            _reach_unix_socket(endpoint)
            # version pinned: "auto" would ask the engine before the short ping could fail fast
            probe = docker.DockerClient(base_url=endpoint, timeout=PING_TIMEOUT_S, version="1.24")
            probe.ping()
            api_version = probe.version(api_version=False)["ApiVersion"]
            client = docker.DockerClient(base_url=endpoint, timeout=timeout, version=api_version)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            reason = _short_reason(exc)
            raise EngineUnavailable(
                f"no container engine answers at {endpoint} ({reason}); start one with "
                f"'scripts/engine up', or point --saveexport-docker-host / DOCKER_HOST at a running engine"
            ) from exc
        finally:
            if probe is not None:
                probe.close()
        return cls(client, endpoint)

    @property
    def facts(self) -> EngineFacts:
        if self._facts is None:
            self._facts = self._read_facts()
        return self._facts

    def _read_facts(self) -> EngineFacts:
        version = self.client.version()
        info = self.client.info()
        components = {c.get("Name", "?"): c.get("Version", "?") for c in version.get("Components") or []}
        kind = "podman" if any("podman" in name.lower() for name in components) else "docker"
        driver_status = {str(k): str(v) for k, v in (info.get("DriverStatus") or [])}
        containerd_store = "io.containerd.snapshotter" in driver_status.get("driver-type", "")
        return EngineFacts(
            kind=kind,
            version=str(version.get("Version", "?")),
            api_version=str(version.get("ApiVersion", "?")),
            min_api_version=str(version.get("MinAPIVersion", "?")),
            os=str(version.get("Os", "?")),
            arch=str(version.get("Arch", "?")),
            kernel=str(version.get("KernelVersion", "?")),
            storage_driver=str(info.get("Driver", "?")),
            image_store="containerd" if containerd_store else "graphdriver",
            endpoint=self.endpoint,
            components=components,
        )

    def close(self) -> None:
        self.client.close()


def _reach_unix_socket(endpoint: str) -> None:
    """Connect to a unix socket ourselves first: docker-py leaks the socket when connect fails."""
    if not endpoint.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PING_TIMEOUT_S)
        sock.connect(endpoint[len("unix://"):])


def _short_reason(exc: BaseException) -> str:
    """The innermost cause in a few words, not a traceback."""
    text = str(exc)
    for marker in ("Connection refused", "No such file or directory", "Permission denied", "timed out",
                   "Name or service not known", "Connection aborted"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:160] if text else type(exc).__name__
