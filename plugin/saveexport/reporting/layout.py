"""The report's order, for a reader: the grid and what differs first, then the evidence row by row, then
sizes, layouts, leftovers and storage, what import loses, the use cases, timings, and the inventory."""

from __future__ import annotations

import html
import json
from typing import Any

from . import details, grid, inventory, movedetails, structure, usecases
from .blocks import Blocks
from .common import cell, table, user_path, without_temporary
from .model import Model, build, engine_rows, subject_rows

from . import JSON_NAME  # noqa: E402  (defined before any renderer is imported)


def blocks(document: dict[str, Any], model: Model | None = None) -> Blocks:
    model = model or build(document)
    add = Blocks()
    add("# saveexport evidence report\n")
    runs = document.get("merged_from") or []
    add(f"Article: {document.get('article')}. {len(model.engines)} engine(s)"
        + (f", merged from {len(runs)} runs" if len(runs) > 1 else "")
        + f"; generated {document.get('created')} by saveexport {document.get('saveexport_version')} "
          f"(evidence schema {document.get('schema_version')}); re-render with `saveexport report {JSON_NAME}`.\n")
    for warning in model.warnings:
        add(f"> **Warning:** {cell(warning, 600)}\n")
    grid.grid(model, add)
    grid.differences(model, add)
    against_baseline(document, add)
    grid.moves(model, add)
    details.claims(model, add)
    inventory.new_behaviours(document, add)
    inventory.faults(document, add)
    movedetails.moves(document, add, model.short)
    structure.cross_load(document, add)
    structure.sizes(document, add)
    inventory.leaks(document, add)
    inventory.storage(document, add)
    usecases.import_losses(document, add)
    usecases.use_cases(document, add)
    usecases.timings(document, add)
    engines(document, model, add)
    other_observations(document, add)
    usecases.tests(document, add)
    return add


def against_baseline(document: dict[str, Any], add: Blocks) -> None:
    compared = document.get("baseline")
    if not compared:
        return
    add("## Against the baseline\n")
    changes, notes = compared.get("changes") or [], compared.get("notes") or []
    add(f"Baseline: `{user_path(compared['file'])}`. " + (f"**{len(changes)} change(s)**:" if changes else
                                                            "Every engine behaved as in the baseline."))
    if changes:
        add("\n".join(f"- **changed** {cell(c, 400)}" for c in changes))
    if notes:
        listed = "\n".join(f"- {cell(n, 300)}" for n in notes)
        add.both(f"\n<details><summary>{len(notes)} note(s): what one side did not measure</summary>\n\n{listed}\n\n"
                 f"</details>\n",
                 f"<details><summary>{len(notes)} note(s): what one side did not measure</summary><ul>"
                 + "".join(f"<li>{html.escape(cell(n, 300))}</li>" for n in notes) + "</ul></details>")
    add("")


def engines(document: dict[str, Any], model: Model, add: Blocks) -> None:
    add("## Engines and subject images\n")
    rows = engine_rows(model)
    if rows:
        add(table(rows, ["grid column", "engine", "version", "API (oldest–newest; spoken)", "storage driver",
                         "image store", "components", "endpoint"]))
    else:
        add("No engine was used in this run.")
    machine = document.get("machine") or {}
    add(f"\nMachine: {machine.get('platform')}, Python {machine.get('python')}, pytest {machine.get('pytest')}, "
        f"Docker SDK {machine.get('docker_sdk')}.\n")
    subjects = subject_rows(document, model)
    if subjects:
        counted = any(r[0] == "not recorded" for r in subjects)
        add(table([[r[0], r[1], r[2], cell(r[3], 60), r[4], r[5], f"{int(r[6]):,}" if r[6] is not None else "",
                    *([r[8]] if counted else []), cell(r[7], 320)] for r in subjects],
                  ["engine", "image", "obtained", "image used", "its id", "layers", "bytes",
                   *(["runs"] if counted else []), "note"]))
        add("\nThe run works on a labelled copy of each image (same layers, its own id), so nothing it removes "
            "or overwrites belongs to anyone else."
            + (" This evidence predates subjects naming their engine: each row counts the runs that used the same "
               "image." if counted else "") + "\n")
    add(inventory.mirror_paragraph(document.get("debian_mirror")))


SHOWN = {"cross-load", "sizes", "save-structure", "decomposition", "flatten-diff", "import-loses",
         "import-repair", "airgap-compose", "base-image", "layer-compression", "move"}


def other_observations(document: dict[str, Any], add: Blocks) -> None:
    """What the sections above do not show, as recorded: listed in Markdown, the JSON folded in the page."""
    rest = [o for o in document.get("observations", []) if o.get("topic") not in SHOWN]
    if not rest:
        return
    add("## Other observations\n")
    add("What each experiment recorded beyond the sections above (in the page, temporary directories left "
        "out); the evidence JSON holds each as recorded.\n")
    topics: dict[str, list[str]] = {}
    for o in rest:
        topics.setdefault(o["topic"], []).append(o.get("engine") or "engine")
    md = table([[t, len(es), cell(", ".join(dict.fromkeys(es)), 300)] for t, es in topics.items()],
               ["topic", "records", "engines"])
    page = []
    for o in rest:
        text = without_temporary(json.dumps(o["data"], indent=1, ensure_ascii=False))
        if len(text) > 4000:
            text = text[:4000] + "\n… (cut here; complete in the evidence JSON)"
        page.append(f"<details><summary>{html.escape(o['topic'])} — {html.escape(str(o.get('engine')))}</summary>"
                    f"<pre><code>{html.escape(text)}</code></pre></details>")
    add.both(md + "\n", "".join(page))
