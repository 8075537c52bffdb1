"""The parts of an image's config that decide how it runs, and the --change lines that restore them."""

from __future__ import annotations

import json
from typing import Any

# What `docker import` of an export can lose; the order is the order of the report's table.
RUN_FIELDS = ("Cmd", "Entrypoint", "Env", "Volumes", "ExposedPorts", "User", "WorkingDir", "StopSignal", "Labels")


def run_config(inspect: dict[str, Any]) -> dict[str, Any]:
    config = inspect.get("Config") or {}
    return {name: config.get(name) or None for name in RUN_FIELDS}


def lost_fields(original: dict[str, Any], imported: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per field: the original value, the imported one, and whether the import lost it.

    Env is compared entry by entry: the engine gives every image a default PATH.
    """
    out = {}
    for name in RUN_FIELDS:
        before, after = original.get(name), imported.get(name)
        if name == "Env":
            lost = sorted(set(before or []) - set(after or []))
            out[name] = {"original": before, "imported": after, "lost": lost}
        else:
            out[name] = {"original": before, "imported": after, "lost": bool(before) and before != after}
    return out


def restoring_changes(original: dict[str, Any], lost: dict[str, dict[str, Any]]) -> list[str]:
    """One Dockerfile instruction per lost setting, in the form `docker import --change` takes."""
    changes: list[str] = []
    for entry in lost.get("Env", {}).get("lost") or []:
        key, _, value = entry.partition("=")
        changes.append(f"ENV {key}={value}")
    if lost.get("Entrypoint", {}).get("lost"):
        changes.append(f"ENTRYPOINT {json.dumps(original['Entrypoint'])}")
    if lost.get("Cmd", {}).get("lost"):
        changes.append(f"CMD {json.dumps(original['Cmd'])}")
    if lost.get("WorkingDir", {}).get("lost"):
        changes.append(f"WORKDIR {original['WorkingDir']}")
    if lost.get("User", {}).get("lost"):
        changes.append(f"USER {original['User']}")
    for volume in (original.get("Volumes") or {}) if lost.get("Volumes", {}).get("lost") else ():
        changes.append(f"VOLUME {json.dumps([volume])}")
    for port in (original.get("ExposedPorts") or {}) if lost.get("ExposedPorts", {}).get("lost") else ():
        changes.append(f"EXPOSE {port}")
    return changes
