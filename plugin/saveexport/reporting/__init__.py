"""The evidence report: one model of the evidence (model.py) read by every output: the Markdown file,
the self-contained HTML page, its pictures, and the CI job summary. Each is rendered from the evidence
document alone, so any of them re-renders from the JSON without an engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import atomic_write

# The renderers (Markdown, matplotlib) are imported when used: the analyser shares only common.py.
MARKDOWN_NAME = "saveexport-report.md"
JSON_NAME = "saveexport-evidence.json"
HTML_NAME = "saveexport-report.html"


def render_markdown(document: dict[str, Any]) -> str:
    from . import layout

    return layout.blocks(document).markdown()


def render_page(document: dict[str, Any], directory: Path) -> str:
    """The HTML page; its pictures must already be in `directory` (draw_plots) to be inlined."""
    from . import html, layout

    return html.page(layout.blocks(document), directory)


def draw_plots(document: dict[str, Any], directory: Path) -> list[Path]:
    from . import model, plots

    return plots.draw(document, model.build(document), directory)


def render_summary(document: dict[str, Any]) -> str:
    from . import summary

    return summary.render(document)


def write(document: dict[str, Any], directory: Path) -> list[Path]:
    """Every file, each atomically: Markdown, evidence, HTML (and the pictures both link to)."""
    directory.mkdir(parents=True, exist_ok=True)
    from . import html, layout, model, plots

    json_path, md_path, html_path = directory / JSON_NAME, directory / MARKDOWN_NAME, directory / HTML_NAME
    atomic_write(json_path, json.dumps(document, indent=1, sort_keys=False, ensure_ascii=False) + "\n")
    built = model.build(document)
    blocks = layout.blocks(document, built)
    atomic_write(md_path, blocks.markdown())
    plots.draw(document, built, directory)
    atomic_write(html_path, html.page(blocks, directory))
    return [md_path, json_path, html_path]


def write_summary(document: dict[str, Any], path: Path, append: bool = False) -> Path:
    """The job summary: appended where CI gathers every step's (GITHUB_STEP_SUMMARY), else written whole."""
    text = render_summary(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        atomic_write(path, text)
    return path
