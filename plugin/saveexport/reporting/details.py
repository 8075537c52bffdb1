"""Below the grid, one entry per row: the article's words, then what each engine did (engines that did the
same in the same words together); in HTML inside <details>, open where the engines differ."""

from __future__ import annotations

import html

from .blocks import Blocks
from .common import cell, normalise_words, table
from .grid import _inline, detail_heading, detail_id
from .model import TONE, Model, Row


def _groups(row: Row, model: Model) -> list[tuple[str, str, list[str], list[str]]]:
    """[(word, evidence, short labels, anchors)]: engines with the same word and words together."""
    out: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for e in model.engines:
        c = row.cells[e.label]
        shorts, anchors = out.setdefault((c.word, normalise_words(c.evidence)), ([], []))
        shorts.append(e.short)
        anchors.append(c.anchor)
    return [(word, evidence, shorts, anchors) for (word, evidence), (shorts, anchors) in out.items()]  # as said,
    # less what always varies (run names, temporary paths), so engines that said the same read as one


def claims(model: Model, add: Blocks) -> None:
    add("## The evidence, row by row\n")
    for row in model.rows:
        groups = _groups(row, model)
        heading = detail_heading(row)
        md = [f"### {heading}\n"]
        if row.article:
            md.append(f"{'The article' if row.key.startswith('C') else 'What'}: {row.article}\n")
        md.append(table([[", ".join(f"`{s}`" for s in shorts), f"**{word}**", cell(evidence, 700) or "—"]
                         for word, evidence, shorts, _ in groups], ["engines", "", "what they did"]))
        parts = [f'<section class="row-detail"><h3 id="{detail_id(row)}">{_inline(heading)}</h3>']
        if row.article:
            said = "The article" if row.key.startswith("C") else "What"
            parts.append(f'<p class="article">{said}: {_inline(html.escape(row.article))}</p>')
        for word, evidence, shorts, anchors in groups:
            ids = "".join(f'<span id="{a}"></span>' for a in anchors if a)
            parts.append(f'<details{" open" if row.differs else ""}><summary><span class="pill '
                         f'{TONE.get(word, "none")}">{html.escape(word)}</span> {html.escape(", ".join(shorts))}</summary>{ids}'
                         f"<p>{_inline(evidence) or '—'}</p></details>")
        parts.append("</section>")
        add.both("\n".join(md) + "\n", "".join(parts))
