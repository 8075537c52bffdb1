"""The report's sections on what the archives are: the cross-load cells (C9, C10, C12) and sizes and
structure (C11), with the pictures they link to."""

from __future__ import annotations

import re
from typing import Any

from .common import cell, mb, normalise_words, observations, table
from .plots import LAYERS_PNG, SIZES_PNG

def cross_load(document: dict[str, Any], add) -> None:
    cells = observations(document, "cross-load")
    if not cells:
        return
    add("## Cross-load matrix (C9, C10, C12)\n")
    add("Each archive of the subject fed to each way in; then: does the result run without a command, and "
        "with the subject's original entrypoint and command? The daemon's words are quoted as it said them.\n")
    rows = []
    for o in sorted(cells, key=lambda o: (o["data"]["archive"], o["data"]["way_in"])):
        d = o["data"]
        into = d["into"]
        runs = d.get("run_default") or {}
        again = d.get("run_original") or {}
        rows.append([o.get("engine") or "", d["archive"], d["way_in"], "yes" if into["ok"] else "no",
                     cell(normalise_words(into.get("message") if not into["ok"] else _first(into)), 140),
                     _run_cell(runs), _run_cell(again)])
    add(table(rows, ["engine", "archive", "way in", "succeeds", "the daemon said", "runs as is",
                      "runs with the original command"]))
    add("")


def _first(outcome: dict[str, Any]) -> str:
    lines = (outcome.get("result") or {}).get("daemon_lines") or []
    return lines[-1] if lines else (outcome.get("message") or "")


def _run_cell(run: dict[str, Any]) -> str:
    if not run:
        return "—"
    result = run.get("result") or {}
    state = result.get("state", "?")
    if run.get("ok"):
        return f"yes ({state})"
    detail = run.get("message") or ""
    return cell(f"no, {state}: {normalise_words(detail)}", 160)


def sizes(document: dict[str, Any], add) -> None:
    engines = list(dict.fromkeys(o.get("engine") for o in observations(document, "sizes") +
                                 observations(document, "save-structure") + observations(document, "decomposition") +
                                 observations(document, "layer-compression")))
    if not engines:
        return
    add("## Sizes and structure (C11)\n")
    if observations(document, "sizes"):
        add(_size_table(document))
        add(f"\n![save and export archive bytes per engine]({SIZES_PNG})\n")
    structure = observations(document, "save-structure")
    if structure:
        add(f"![file bytes per layer of {structure[0].get('engine')}'s save, visible and hidden by later layers]"
            f"({LAYERS_PNG})\n")
    for engine in engines:
        if len(engines) > 1:
            add.fold(f"{engine}: layout, layers, where the difference comes from, flattened image vs export")
        _sizes_of(document, add, engine)
        if len(engines) > 1:
            add.end_fold()


def _sizes_of(document: dict[str, Any], add, engine: str | None) -> None:
    def mine(topic: str) -> list[dict[str, Any]]:
        return [o for o in observations(document, topic) if o.get("engine") == engine]

    sizes, structure, decomposition, flatten_diff = (mine("sizes"), mine("save-structure"), mine("decomposition"),
                                                     mine("flatten-diff"))
    for o in mine("layer-compression"):
        d = o["data"]
        came = "arrived by load" if d["subject_arrived_by_load"] else f"was obtained here: {d['subject_obtained']}"
        add(f"Layer compression in save archives: the subject's layers (it {came}) are written "
            f"**{'/'.join(d['subject_layers'])}**; a layer this engine built is written **{d['built_layer']}** "
            f"({d['built_layer_bytes']:,} B for {d['built_layer_uncompressed_bytes']:,} B of tar).\n")
    for o in sizes:
        d = o["data"]
        add(table([["save archive", mb(d["save_bytes"])], ["export archive", mb(d["export_bytes"])],
                    ["save − export", mb(d["save_bytes"] - d["export_bytes"])],
                    ["image size reported by the engine", mb(d.get("image_size"))]], ["", "bytes"]))
        add("")
    for o in structure:
        d = o["data"]
        add(f"Save archive layout: **{d['layout']}**; top level: {_summarise_names(d['top_level'])}.\n")
        add(table([[i + 1, cell(layer["member"], 80), layer["compression"], f"{layer['size']:,}", layer["entries"],
                     layer["added"], layer["changed"], layer["removed"], f"{layer['shadowed_bytes']:,}"]
                    for i, layer in enumerate(d["layers"])],
                   ["#", "layer", "compression", "bytes", "entries", "added", "changed", "removed (whiteouts)",
                    "bytes shadowed later"]))
        add("")
    for o in decomposition:
        d = o["data"]
        add("Where the difference between the two archives comes from (adds up to the measured difference):\n")
        rows = [[k.replace("_", " "), f"{v:,}"] for k, v in d.items() if isinstance(v, int)]
        add(table(rows, ["part", "bytes"]))
        add("")
    for o in flatten_diff:
        d = o["data"]
        add(f"Flattened image (whiteouts applied) vs export: {d['image_files']:,} paths in the image, "
            f"{d['export_files']:,} in the export, {d['same_files']:,} identical.\n")
        add(table([[cause, v["paths"], f"{v['image_bytes']:,}", f"{v['export_bytes']:,}"]
                    for cause, v in d["by_cause"].items()], ["cause", "paths", "image bytes", "export bytes"]))
        add("")
        add(table([[cell(x["path"], 70), x["where"], x["cause"],
                     cell(", ".join(f"{k}: {v[0]} → {v[1]}" for k, v in x["fields"].items()), 80)]
                    for x in d["differences"][:60]], ["path", "where", "cause", "what differs"]))
        if len(d["differences"]) > 60:
            add(f"\n… and {len(d['differences']) - 60} more (all in the JSON).")
        add("")


def _summarise_names(names: list[str]) -> str:
    """Digest-named entries counted, the rest named: '12 directories named by digest, manifest.json, …'."""
    digest = re.compile(r"^[0-9a-f]{64}(\.json)?$")
    dirs = [n for n in names if digest.match(n) and not n.endswith(".json")]
    configs = [n for n in names if digest.match(n) and n.endswith(".json")]
    rest = [n for n in names if not digest.match(n)]
    parts = []
    if dirs:
        parts.append(f"{len(dirs)} directories named by digest")
    if configs:
        parts.append(f"{len(configs)} `<digest>.json` config file(s)")
    return ", ".join(parts + [f"`{n}`" for n in rest])



def _size_table(document: dict[str, Any]) -> str:
    return table([[o.get("engine"), f"{o['data']['save_bytes']:,}", f"{o['data']['export_bytes']:,}",
                   f"{o['data']['save_bytes'] - o['data']['export_bytes']:+,}"] for o in observations(document, "sizes")],
                 ["engine", "save bytes", "export bytes", "save − export"])
