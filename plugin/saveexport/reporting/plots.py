"""The report's pictures, drawn from the evidence alone: save against export bytes per engine, the move grid
as a coloured matrix, and one save archive's layer bytes with the bytes later layers hide."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..archives.plot import draw_layers
from .common import observations
from .model import TONE, Model

LAYERS_PNG = "saveexport-layers.png"
SIZES_PNG = "saveexport-sizes.png"
MOVES_PNG = "saveexport-moves.png"
COLOURS = {"yes": "#2e9e44", "no": "#d1343b", "part": "#e7a21a", "none": "#d9d9d9", "fail": "#7b4fb0"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(document: dict[str, Any], model: Model, directory: Path) -> list[Path]:
    """Every picture this evidence has data for; none for what it does not hold."""
    made = []
    for o in observations(document, "save-structure")[:1]:
        layers = o["data"]["layers"]
        shadowed = sum(layer["shadowed_bytes"] for layer in layers)
        total = sum(layer["size"] for layer in layers)
        tags = ", ".join(re.sub(r"^saveexport-[0-9a-f]{8}-(gw\d+-)?", "", t) for t in o["data"].get("repo_tags") or [])
        title = (f"{tags} saved on {model.short(o.get('engine'))}:\n"
                 f"{shadowed / 1e6:.1f} MB of its {total / 1e6:.1f} MB of layers are hidden by later layers")
        made.append(draw_layers(layers, title, directory / LAYERS_PNG))
    sizes = observations(document, "sizes")
    if sizes:
        made.append(_sizes(sizes, model, directory / SIZES_PNG))
    if model.moves:
        made.append(_moves(model, directory / MOVES_PNG))
    return made


def _sizes(sizes: list[dict[str, Any]], model: Model, path: Path) -> Path:
    plt = _pyplot()
    order = [e.label for e in model.engines]
    sizes = sorted(sizes, key=lambda o: order.index(o.get("engine")) if o.get("engine") in order else len(order))
    labels = [model.short(o.get("engine")) for o in sizes]
    save = [o["data"]["save_bytes"] / 1e6 for o in sizes]
    export = [o["data"]["export_bytes"] / 1e6 for o in sizes]
    fig, ax = plt.subplots(figsize=(9, max(2.6, 0.6 * len(sizes) + 1.6)))
    positions = range(len(sizes))
    ax.barh([p - 0.2 for p in positions], save, height=0.4, label="docker save archive", color="tab:blue")
    ax.barh([p + 0.2 for p in positions], export, height=0.4, label="docker export archive", color="tab:orange")
    for p, s, e in zip(positions, save, export):
        ax.text(max(s, e), p, f"  save {s:,.1f} MB, export {e:,.1f} MB: {s - e:+,.1f} MB", va="center", fontsize=8)
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_xlim(0, max(save + export) * 1.6)
    ax.set_title("The subject's save and export archives, per engine (C11)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _moves(model: Model, path: Path) -> Path:
    from matplotlib.colors import to_rgb

    plt = _pyplot()
    from .model import move_name

    targets = list(model.moves[0].cells)
    grid = [[to_rgb(COLOURS[TONE.get(row.cells[t].word, "none")]) for t in targets] for row in model.moves]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(model.moves) + 2.2))
    ax.imshow(grid, aspect="auto")
    for y, row in enumerate(model.moves):
        for x, target in enumerate(targets):
            ax.text(x, y, row.cells[target].symbol, ha="center", va="center", fontsize=10, color="white"
                    if TONE.get(row.cells[target].word) in ("yes", "no", "fail") else "black")
    ax.set_xticks(range(len(targets)), [model.short(t) for t in targets], rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(model.moves)), [move_name(row, model) for row in model.moves], fontsize=8)
    ax.set_xlabel("loaded on")
    ax.set_title("Archives moved between engines\n✓ loads and runs   ◐ loads, cannot run   ✗ refused   ∅ loaded nothing"
                 "   · not measured", fontsize=9)
    ax.set_xticks([x - 0.5 for x in range(1, len(targets))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(model.moves))], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
