"""Compose v2 and the compose application of the air-gap scenario (C4).

pytest-docker runs its compose command through a shell, so the command it gets is built here with
shlex quoting, and names the engine by DOCKER_HOST: each engine gets its own command string and the
test process's environment is never changed. Compose v1 is refused: with it pytest-docker's
`up --build --wait` prints usage, exits 0 and starts nothing.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import calls
from .debian_mirror import Mirrors
from .errors import UsageError
from .isolation import RunScope
from .provision import COMPOSE_SUITE, fetch_compose


@dataclass(frozen=True)
class Compose:
    """A Compose v2 that answers: its argv prefix, version, and where it came from."""

    argv: tuple[str, ...]
    version: str
    source: str

    def argv_for(self, endpoint: str) -> list[str]:
        """Compose aimed at one engine (the test process's own environment stays as it is).

        DOCKER_API_VERSION is dropped: pinned, it would stop Compose from negotiating, and an engine
        with a raised floor (Docker 29: 1.44) refuses anything older."""
        return ["env", "-u", "DOCKER_API_VERSION", f"DOCKER_HOST={endpoint}", *self.argv]

    def command(self, endpoint: str) -> str:
        """The shell command pytest-docker prefixes to its sub-commands."""
        return shlex.join(self.argv_for(endpoint))

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "version": self.version, "source": self.source}


def _v2(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = proc.stdout.strip().lstrip("v")
    return version if proc.returncode == 0 and version.startswith("2.") else None


def find_compose(fetch: bool = True, mirrors: Mirrors | None = None) -> Compose:
    """`docker compose` or a v2 `docker-compose` on the machine; else Debian's, fetched into the cache."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and (version := _v2(argv)):
            return Compose(tuple(argv), version, "the machine's " + " ".join(argv))
    if fetch:
        try:
            binary = fetch_compose(mirrors=mirrors)
        except UsageError as exc:
            raise UsageError(f"Compose v2 is missing and could not be fetched ({exc}); install Docker's "
                             f"docker-compose-plugin, or run `saveexport provision compose` where a Debian "
                             f"mirror with trixie answers") from exc
        if version := _v2([str(binary)]):
            return Compose((str(binary),), version, f"Debian {COMPOSE_SUITE} docker-compose, cached at {binary}")
        raise UsageError(f"{binary} does not answer as Compose v2; remove it and run `saveexport provision compose`")
    raise UsageError("Compose v2 is missing (pytest-docker needs `docker compose`); install Docker's "
                     "docker-compose-plugin, or run `saveexport provision compose`")


APP_PORT = 8080
PG_PASSWORD = "saveexport"


def write_compose_file(path: Path, *, db_image: str, app_image: str, scope: RunScope, bind: str = "127.0.0.1") -> Path:
    """The application: postgres and the project's notes app, every resource labelled with the run.

    `pull_policy: never` is what an air-gapped host means: an image that is not on the engine is an
    error, not a download. The app's port is published on `bind` only (this machine's loopback for a
    local engine). No healthchecks: Podman runs them only through systemd timers, and without systemd
    a `service_healthy` dependency waits forever; the app waits for the database itself, and the test
    for the app. JSON is valid YAML, so no YAML writer is needed.
    """
    labels = dict(scope.labels)
    document = {
        "services": {
            "db": {
                "image": db_image, "pull_policy": "never", "labels": labels,
                "environment": {"POSTGRES_PASSWORD": PG_PASSWORD},
                "volumes": ["pgdata:/var/lib/postgresql/data"],
            },
            "app": {
                "image": app_image, "pull_policy": "never", "labels": labels,
                "environment": {"PGHOST": "db", "PGPASSWORD": PG_PASSWORD},
                "depends_on": ["db"],
                "ports": [f"{bind}::{APP_PORT}" if bind else str(APP_PORT)],
            },
        },
        "volumes": {"pgdata": {"labels": labels}},
        "networks": {"default": {"labels": labels}},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


class AppError(Exception):
    """The deployed app answered, but not as it should."""


class AppClient:
    """Talks to the notes app over HTTP, as a user of the deployed application would."""

    def __init__(self, host: str, port: int):
        self.base = f"http://{host}:{port}"

    def _call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/health")[0] == 200
        except (OSError, ValueError):
            return False

    def wait(self, timeout_s: float = 90) -> float:
        started = time.monotonic()
        while not self.healthy():
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"the app at {self.base} did not answer within {timeout_s:.0f} s")
            calls.pause(0.5)
        return round(time.monotonic() - started, 3)

    def write(self, text: str) -> dict[str, Any]:
        status, payload = self._call("POST", "/notes", text.encode())
        if status != 201:
            raise AppError(f"POST /notes answered {status}: {payload}")
        return payload

    def notes(self) -> list[str]:
        status, payload = self._call("GET", "/notes")
        if status != 200:
            raise AppError(f"GET /notes answered {status}: {payload}")
        return [n["body"] for n in payload]
