"""An Engine: a connected Docker SDK client plus the facts a report must state about it."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
import docker.constants
import docker.errors
import requests.exceptions

from . import calls
from .errors import EngineIncompatible, EngineUnavailable
from .faults import peer_pid

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
    client_api_version: str = "?"  # the API version the suite speaks to it (negotiated)
    variant: str = ""  # how the engine was started apart from its build, e.g. min-api-1.44

    @property
    def label(self) -> str:
        """A test-id friendly name, e.g. docker-20.10.24-overlay2 or docker-28.5.2-overlay2-min-api-1.44."""
        store = "containerd" if self.image_store == "containerd" else self.storage_driver
        version = self.version.split("+")[0]
        base = f"{self.kind}-{version}-{store}" if self.kind == "docker" else f"{self.kind}-{version}"
        return f"{base}-{self.variant}" if self.variant else base

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
        self.variant = ""  # set where the engine was started differently from its build (see EngineFacts)
        self.pid: int | None = None  # the process serving its unix socket, when local (faults.py judges by it)
        self.log_path = None  # a private engine's log, whose last lines a fault report shows
        self.fault = None  # a faults.Fault once the engine itself failed
        self.storage_root = None  # a private engine's storage (its data-root), which the suite alone writes
        self.storage_watch = None  # a storage_watch.Watch while a run uses the engine
        self.cli = None  # (argv, env) of a CLI on a private Podman's own store
        self.server_version: dict[str, Any] | None = None  # the engine's own /version, from the first contact
        self._facts: EngineFacts | None = None

    @classmethod
    def connect(cls, endpoint: str | None = None, timeout: int = DEFAULT_TIMEOUT_S) -> Engine:
        """Connect at the newest API both sides speak, failing within seconds with one clear line."""
        endpoint = resolve_endpoint(endpoint)
        server = _first_contact(endpoint)
        api_version = negotiate(server, endpoint)
        try:
            client = docker.DockerClient(base_url=endpoint, timeout=timeout, version=api_version)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            raise EngineUnavailable(f"the engine at {endpoint} answered, but the client could not be set up "
                                    f"({_short_reason(exc)})") from exc
        calls.wrap(client.api, endpoint)  # when the run records its engine calls (calls.py)
        engine = cls(client, endpoint)
        engine.server_version = server
        engine.pid = peer_pid(endpoint)
        return engine

    @property
    def label_for_faults(self) -> str:
        return self._facts.label if self._facts is not None else self.endpoint

    @property
    def facts(self) -> EngineFacts:
        if self._facts is None:
            self._facts = self._read_facts()
        return self._facts

    def _read_facts(self) -> EngineFacts:
        version = self.server_version or self.client.version(api_version=False)
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
            client_api_version=str(self.api._version),
            variant=self.variant or getattr(self.spec, "variant", "") or "",
        )

    def close(self) -> None:
        self.client.close()


# What the installed docker-py speaks: its default is the newest API it knows (7.1: 1.44), and it
# refuses anything older than its minimum.
CLIENT_MAX_API = docker.constants.DEFAULT_DOCKER_API_VERSION
CLIENT_MIN_API = docker.constants.MINIMUM_DOCKER_API_VERSION


def _first_contact(endpoint: str) -> dict[str, Any]:
    """The engine's own /version, asked on the unversioned endpoints, so no version guess can be refused.

    Docker 29 refuses every versioned path below its floor (1.44) with HTTP 400: a pinned first
    contact would read that as "nothing answers".
    """
    probe = None
    try:
        _reach_unix_socket(endpoint)
        # the version given here is never sent: only unversioned paths are asked
        probe = docker.APIClient(base_url=endpoint, timeout=PING_TIMEOUT_S, version=CLIENT_MAX_API)
        calls.wrap(probe, endpoint)
        ping = probe._get(probe._url("/_ping", versioned_api=False))
        if ping.status_code != 200:
            raise EngineUnavailable(f"something answers at {endpoint}, but not as a container engine "
                                    f"(GET /_ping: HTTP {ping.status_code}); point --saveexport-docker-host / "
                                    f"DOCKER_HOST at a Docker or Podman API socket")
        server = probe.version(api_version=False)
    except EngineUnavailable:
        raise
    except docker.errors.APIError as exc:
        raise EngineUnavailable(f"something answers at {endpoint}, but not as a container engine "
                                f"(GET /version: {_short_reason(exc)}); point --saveexport-docker-host / "
                                f"DOCKER_HOST at a Docker or Podman API socket") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError) as exc:
        raise EngineUnavailable(
            f"no container engine answers at {endpoint} ({_short_reason(exc)}); start one with "
            f"'scripts/engine up', or point --saveexport-docker-host / DOCKER_HOST at a running engine"
        ) from exc
    finally:
        if probe is not None:
            probe.close()
    if not isinstance(server, dict) or not server.get("ApiVersion"):
        raise EngineUnavailable(f"something answers at {endpoint}, but its /version names no API version; point "
                                f"--saveexport-docker-host / DOCKER_HOST at a Docker or Podman API socket")
    return server


def _api(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise EngineUnavailable(f"the engine reports an API version that is not a number: {version!r}") from None


def negotiate(server: dict[str, Any], endpoint: str, client_max: str = CLIENT_MAX_API,
              client_min: str = CLIENT_MIN_API) -> str:
    """The newest API version both sides speak, as the docker CLI negotiates it; or one line why none."""
    server_max = str(server["ApiVersion"])
    server_min = str(server.get("MinAPIVersion") or server_max)
    chosen = min(server_max, client_max, key=_api)
    what = f"{_product(server)} at {endpoint}"
    if _api(chosen) < _api(server_min):
        raise EngineIncompatible(f"{what} requires API {server_min} or newer; this client (docker-py "
                                 f"{docker.__version__}) speaks API {client_min} to {client_max}: upgrade it "
                                 f"(pip install -U 'docker>=7.1')")
    if _api(chosen) < _api(client_min):
        raise EngineIncompatible(f"{what} speaks API {server_min} to {server_max}; this client (docker-py "
                                 f"{docker.__version__}) speaks API {client_min} to {client_max}: use a newer engine")
    return chosen


def _product(server: dict[str, Any]) -> str:
    components = [str(c.get("Name", "")) for c in server.get("Components") or []]
    name = "Podman" if any("podman" in c.lower() for c in components) else "Docker"
    return f"{name} {server.get('Version', '?')}"


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
