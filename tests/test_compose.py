"""Compose v2 for the air-gap scenario: how it is found, the command pytest-docker gets, the compose file."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from saveexport.compose import Compose, find_compose, write_compose_file
from saveexport.errors import UsageError
from saveexport.isolation import LABEL_RUN, RunScope


def _fake(tmp_path, name: str, version: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n[ \"$1\" = version ] && echo '{version}' && exit 0\nexit 3\n")
    tool.chmod(0o755)
    return bin_dir


def test_compose_v1_is_refused_with_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake(tmp_path, "docker-compose", "1.29.2")))
    with pytest.raises(UsageError) as info:
        find_compose(fetch=False)
    message = str(info.value)
    assert "\n" not in message and "Compose v2 is missing" in message and "saveexport provision compose" in message


def test_a_v2_docker_compose_on_path_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake(tmp_path, "docker-compose", "v2.29.7")))
    found = find_compose(fetch=False)
    assert found.argv == ("docker-compose",) and found.version == "2.29.7"


def test_the_command_for_pytest_docker_names_the_engine_and_survives_the_shell(tmp_path):
    """Through a shell, as pytest-docker runs it: the engine is named, a pinned API version is not passed on."""
    tools = tmp_path / "my tools"
    tools.mkdir()
    fake = tools / "docker-compose"
    fake.write_text('#!/bin/sh\necho "host=$DOCKER_HOST api=${DOCKER_API_VERSION-unset} args=$*"\n')
    fake.chmod(0o755)
    compose = Compose((str(fake),), "2.26.1", "test")
    command = compose.command("unix:///run/saveexport/x y/docker.sock")
    env = dict(os.environ, DOCKER_API_VERSION="1.24")
    out = subprocess.run(["sh", "-c", f"{command} up --wait"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "host=unix:///run/saveexport/x y/docker.sock api=unset args=up --wait"
    assert "DOCKER_HOST" not in os.environ or os.environ["DOCKER_HOST"] != "unix:///run/saveexport/x y/docker.sock"


def test_the_compose_file_labels_everything_and_never_pulls(tmp_path):
    scope = RunScope(run_id="abcd1234")
    path = write_compose_file(tmp_path / "compose.yaml", db_image="saveexport-abcd1234-postgres:9.6",
                              app_image="saveexport-abcd1234-saveexport-app:1", scope=scope)
    document = json.loads(path.read_text())  # JSON is YAML: compose reads it as written
    services = document["services"]
    assert set(services) == {"db", "app"}
    assert all(s["pull_policy"] == "never" and s["labels"][LABEL_RUN] == "abcd1234" for s in services.values())
    assert document["volumes"]["pgdata"]["labels"][LABEL_RUN] == "abcd1234"
    assert document["networks"]["default"]["labels"][LABEL_RUN] == "abcd1234"
    assert services["app"]["ports"] == ["127.0.0.1::8080"]  # loopback only: nothing is exposed to the network
    assert services["app"]["depends_on"] == ["db"]
    assert not any("healthcheck" in s for s in services.values())  # Podman without systemd never runs them
    remote = write_compose_file(tmp_path / "remote.yaml", db_image="a", app_image="b", scope=scope, bind="")
    assert json.loads(remote.read_text())["services"]["app"]["ports"] == ["8080"]

