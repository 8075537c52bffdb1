"""The short form for a CI job summary: the grid, what differs, and the baseline's changes; text only (a job
summary shows no local pictures, and links into the page would lead nowhere)."""

from __future__ import annotations

from typing import Any

from .common import cell, table, user_path
from .grid import CLAIM_WORDS, LOAD_WORDS, lead, legend
from .model import DIFFERS, Model, build, move_name


def render(document: dict[str, Any], model: Model | None = None) -> str:
    model = model or build(document)
    out = ["## saveexport: the article's claims on each engine\n"]
    for warning in model.warnings:
        out.append(f"> **Warning:** {cell(warning, 600)}\n")
    out.append(lead(model) + "\n")
    out.append(table([[f"{DIFFERS} " * r.differs + f"{r.key} {r.title}", *(r.cells[e.label].symbol for e in model.engines)]
                      for r in model.rows], ["claim or archive → way in", *[f"`{e.short}`" for e in model.engines]]))
    out.append(f"\n{DIFFERS} differs between engines. {legend(CLAIM_WORDS)}; {legend(LOAD_WORDS)}.\n")
    if len(model.engines) > 1:
        out.append("### What differs between engines\n")
        out.append("\n".join(f"- {line}" for line in model.differences) or "- nothing: every engine behaved alike")
        out.append("")
    if model.moves:
        targets = list(model.moves[0].cells)
        out.append("### Archives moved between engines\n")
        out.append(table([[move_name(r, model), *(r.cells[t].symbol for t in targets)] for r in model.moves],
                         ["archive", *[f"`{model.short(t)}`" for t in targets]]))
        out.append("")
    compared = document.get("baseline")
    if compared:
        changes = compared.get("changes") or []
        out.append(f"### Against the baseline `{user_path(compared['file'])}`\n")
        out.append("\n".join(f"- **changed** {cell(c, 400)}" for c in changes) if changes
                   else "Every engine behaved as in the baseline.")
        out.append("")
    return "\n".join(out) + "\n"

