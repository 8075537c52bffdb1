"""The report as one self-contained page: every block's HTML (or its Markdown converted), the pictures
inlined as data URIs, a style that keeps every table and picture inside a 1,366 px window."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown
import markdown.extensions.fenced_code  # noqa: F401  (imported with this module: see plugin.py)
import markdown.extensions.tables  # noqa: F401

from .blocks import Blocks

STYLE = """
body{font:15px/1.45 system-ui,"Noto Sans","Noto Sans CJK SC",sans-serif;max-width:80rem;margin:1.5rem auto;
 padding:0 1rem;color:#222}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:13px;max-width:100%}
th,td{border:1px solid #ccc;padding:.25rem .45rem;vertical-align:top;text-align:left;overflow-wrap:break-word}
th{background:#f3f3f3}code{background:#f6f6f6;padding:0 .2rem;font-size:12px;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f8f8f8;padding:.5rem;font-size:12px}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
table.grid{font-size:14px}table.grid th.engine{text-align:center;white-space:nowrap;font-weight:600}
table.grid th.row{font-weight:normal;background:#fafafa;min-width:16rem}
table.grid tr.differs th.row{background:#fff4d6}span.differs{color:#b36b00}
table.grid td.cell{text-align:center;min-width:3.2rem;padding:.2rem .3rem}
table.grid td.cell a{color:inherit;text-decoration:none;display:block}
td.cell .word{display:block;font-size:10px;line-height:1.1}
.yes{background:#d8f0dc;color:#155d27}.no{background:#f8d7d9;color:#8a1c22}.part{background:#fcebc5;color:#7a5200}
.none{background:#eee;color:#666}.fail{background:#e6dcf3;color:#4b2a7a}
.pill{padding:0 .35rem;border-radius:.3rem;font-size:12px}
details{margin:.3rem 0;border:1px solid #e3e3e3;border-radius:.3rem;padding:.2rem .5rem}
details>summary{cursor:pointer}section.row-detail p.article{color:#555;font-style:italic}
""".replace("\n", "")

EXTENSIONS = ["tables", "fenced_code"]


def page(blocks: Blocks, directory: Path) -> str:
    """Every block as HTML, in order; Markdown blocks converted one at a time."""
    parts = [b.html if b.html is not None else markdown.markdown(b.markdown, extensions=EXTENSIONS,
                                                                  output_format="html")
             for b in blocks.items]
    title = next((b.markdown.lstrip("# ").strip() for b in blocks.items if b.markdown.startswith("# ")),
                 "saveexport report")
    return _wrap(title, "\n".join(parts), directory)


def render_html(markdown_text: str, directory: Path) -> str:
    """A Markdown text as one page with its pictures inlined, to attach to a ticket or publish as is."""
    body = markdown.markdown(markdown_text, extensions=EXTENSIONS, output_format="html")
    title = markdown_text.splitlines()[0].lstrip("# ") if markdown_text else "saveexport report"
    return _wrap(title, body, directory)


def _wrap(title: str, body: str, directory: Path) -> str:
    def inline(match: re.Match) -> str:
        picture = directory / match.group(1)
        if not picture.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(picture.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"/]+\.png)"', inline, body)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
