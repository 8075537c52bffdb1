"""The move grid's details: its picture, and each pair that did otherwise than on the archive's own engine."""

from __future__ import annotations

from typing import Any

from .blocks import Blocks
from .common import cell, normalise_words, observations
from .plots import MOVES_PNG


def moves(document: dict[str, Any], add: Blocks, short=lambda label: label) -> None:
    found: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for o in observations(document, "move"):
        d = o["data"]
        archive = d["archive"]
        found.setdefault((archive["kind"], archive["writer"], archive["source_engine"]), {})[d["target"]] = d
    if not found:
        return
    add.both("## Moving archives between engines\n", '<h2 id="moves">Moving archives between engines</h2>')
    add("A small image (files, a symlink, a deleted file, a command that prints a known line), built by each "
        "source engine itself; each writer's archive of it loaded into each engine (skopeo converts the "
        "machine's engine's save). The grid is at the top of the report.\n")
    add(f"![the move grid: each archive against each engine it was loaded on]({MOVES_PNG})\n")
    differing = []
    for (kind, writer, source), cells in sorted(found.items()):
        own = cells.get(source) or {}
        if not own:
            continue
        for target, c in sorted(cells.items()):
            if target == source:
                continue
            said = []
            if c["outcome"] != own.get("outcome"):
                words = normalise_words((c.get("load") or {}).get("message")) if c["outcome"] == "refused" else ""
                said.append(c["outcome"] + (f" (`{cell(words, 200)}`)" if words else ""))
            both_loaded = c.get("image_id") and own.get("image_id")
            if both_loaded and c.get("named") != own.get("named"):
                said.append("loaded without a name" if not c.get("named") else "loaded with its name")
            if both_loaded and c.get("id_is") != own.get("id_is"):
                said.append(f"its id is {c['id_is']} (on its own engine: {own.get('id_is') or 'no image'})")
            if said:
                by = "" if writer == source else f" by {writer}"
                differing.append(f"- {kind}{by} of {short(source)}'s image, loaded on {short(target)}: "
                                 + "; ".join(said))
    if differing:
        add("Where a pair differs from the archive's own engine:\n")
        add("\n".join(differing))
        add("")
