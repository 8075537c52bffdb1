"""A picture of an image's layers: bytes each layer stores, and how many of them later layers hide."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def layers_png(summary: dict[str, Any], path: Path) -> Path:
    """The first image of an `inspect` summary."""
    image = summary["images"][0]
    tags = ", ".join(image["tags"]) or image["id"][:19]
    layer_bytes = sum(layer["size"] for layer in image["layers"])
    return draw_layers(image["layers"], f"{tags}: {image['shadowed_bytes'] / 1e6:.1f} MB of "
                                        f"{layer_bytes / 1e6:.1f} MB shadowed", path)


def draw_layers(layers: list[dict[str, Any]], title: str, path: Path) -> Path:
    """One horizontal bar per layer: visible bytes and shadowed bytes, stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{i + 1}: {layer['member'][:12]}… ({layer['compression']})" for i, layer in enumerate(layers)]
    shadowed = [layer["shadowed_bytes"] / 1e6 for layer in layers]
    visible = [max(layer["content_bytes"] - layer["shadowed_bytes"], 0) / 1e6 for layer in layers]
    height = max(2.5, 0.4 * len(layers) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height))
    ax.barh(labels, visible, label="visible in the image")
    ax.barh(labels, shadowed, left=visible, label="hidden by later layers (shadowed)", color="tab:red")
    ax.invert_yaxis()
    ax.set_xlabel("MB of file content")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
