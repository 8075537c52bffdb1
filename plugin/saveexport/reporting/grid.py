"""The first screen: the grid (claims and cross-load cells × engines), what differs between engines, and
the move grid; in Markdown as pipe tables of symbols, in HTML coloured, each cell linking to its evidence."""

from __future__ import annotations

import html
import re

from .blocks import Blocks
from .common import normalise_words, table
from .model import DIFFERS, SYMBOLS, TONE, Model, MoveRow, Row, move_name

CLAIM_WORDS = ["confirmed", "refuted", "version-dependent", "not testable", "no verdict", "not measured"]
LOAD_WORDS = ["loads and runs", "loads, cannot run", "refused", "loaded nothing", "not measured"]


def legend(words: list[str]) -> str:
    return ", ".join(f"{SYMBOLS[w]} {w}" for w in words)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def detail_heading(row: Row) -> str:
    return f"{row.key}: {row.title}" if row.title else row.key


def _row_label_md(row: Row) -> str:
    mark = f"{DIFFERS} " if row.differs else ""
    return f"{mark}[{row.key}](#{github_slug(detail_heading(row))}) {row.title}".rstrip()


def _td(word: str, symbol: str, href: str, title: str) -> str:
    link = f'<a href="#{href}">{symbol}</a>' if href else symbol
    return f'<td class="cell {TONE.get(word, "none")}" title="{html.escape(title, quote=True)}">{link}</td>'


def lead(model: Model) -> str:
    """The grid's answer in one sentence, so a reader who reads nothing else has it."""
    n, differing = len(model.engines), [r.key for r in model.rows if r.differs]
    moved = sum(r.differs for r in model.moves)
    if n < 2:
        return f"The article's claims on {model.engines[0].short if model.engines else 'this engine'}:"
    verb = "differs" if len(differing) == 1 else "differ"
    said = (f"{', '.join(differing)} {verb} between the {n} engines ({DIFFERS})" if differing else
            f"Every verdict and cross-load outcome is the same on the {n} engines")
    others = len(model.differences) - len(differing)
    if others:
        said += (f"; {others} other " + ("thing differs" if others == 1 else "things differ")
                 + (f", {moved} of them in the move grid" if moved else "")
                 + ": see what differs, below the grid")
    return said + "."


def grid(model: Model, add: Blocks) -> None:
    add(lead(model) + "\n")
    shorts = [e.short for e in model.engines]
    md_rows = [[_row_label_md(r), *(r.cells[e.label].symbol for e in model.engines)] for r in model.rows]
    md = table(md_rows, ["claim or archive → way in", *[f"`{s}`" for s in shorts]])
    head = "".join(f'<th class="engine" title="{html.escape(e.label)}">{html.escape(e.short)}</th>'
                   for e in model.engines)
    body = []
    for r in model.rows:
        tds = "".join(_td(c.word, c.symbol, c.anchor, f"{e.short}: {c.word}" + (f" — {normalise_words(c.evidence)[:300]}" if c.evidence
                                                                                  else ""))
                      for e in model.engines for c in [r.cells[e.label]])
        mark = f'<span class="differs" title="differs between engines">{DIFFERS}</span> ' if r.differs else ""
        body.append(f'<tr class="{"differs" if r.differs else "same"}"><th class="row">{mark}'
                    f'<a href="#{detail_id(r)}">{html.escape(r.key)}</a> {_inline(r.title)}</th>{tds}</tr>')
    page = (f'<table class="grid" id="grid"><thead><tr><th class="row">claim or archive → way in</th>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>')
    add.both(md + "\n", page)
    add((f"{DIFFERS} differs between engines. " if len(model.engines) > 1 else "")
        + f"Claims: {legend(CLAIM_WORDS)}. Archives: {legend(LOAD_WORDS)}. Each row's evidence per engine is "
          f"below, under its heading.\n")


def differences(model: Model, add: Blocks) -> None:
    if len(model.engines) < 2:
        return
    add("## What differs between engines\n")
    add("\n".join(f"- {line}" for line in model.differences) or "- nothing: every engine behaved alike")
    add("")


def moves(model: Model, add: Blocks) -> None:
    if not model.moves:
        return
    targets = list(model.moves[0].cells)
    add("## Archives moved between engines\n")
    add("Each row is an archive of the move image (kind, and the engine whose image it is); each column the "
        f"engine it was loaded on. {legend(LOAD_WORDS)} (engines in separate runs).\n")
    md = table([[move_name(r, model), *(r.cells[t].symbol for t in targets)] for r in model.moves],
               ["archive", *[f"`{model.short(t)}`" for t in targets]])
    head = "".join(f'<th class="engine" title="{html.escape(t)}">{html.escape(model.short(t))}</th>' for t in targets)
    body = "".join(
        f'<tr class="{"differs" if r.differs else "same"}"><th class="row">{html.escape(move_name(r, model))}</th>'
        + "".join(_td(c.word, c.symbol, "moves" if c.word != "not measured" else "",
                      f"{model.short(t)}: {c.word}" + (f" — {c.evidence}" if c.evidence else ""))
                  for t in targets for c in [r.cells[t]]) + "</tr>" for r in model.moves)
    add.both(md + "\n", f'<table class="grid moves"><thead><tr><th class="row">archive ↓ loaded on →</th>{head}'
                        f"</tr></thead><tbody>{body}</tbody></table>")


def detail_id(row: Row) -> str:
    return github_slug(detail_heading(row))


def _inline(text: str) -> str:
    """`code` in a title, as the Markdown shows it."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def move_summary(row: MoveRow) -> str:
    return ", ".join(f"{t}: {c.word}" for t, c in row.cells.items())
