"""`from saveexport import report`: the evidence report's entry points (the renderers live in reporting/)."""

from __future__ import annotations

from .archives.text import render_diff, render_inspect  # noqa: F401  (the analyser's text, for older callers)
from .evidence import load  # noqa: F401
from .reporting import (HTML_NAME, JSON_NAME, MARKDOWN_NAME, draw_plots, render_markdown,  # noqa: F401
                        render_page, render_summary, write, write_summary)
from .reporting.common import normalise_words as _normalise_words, observations  # noqa: F401
from .reporting.html import render_html  # noqa: F401
from .reporting.inventory import leaks as _leaks, mirror_paragraph as _mirror_paragraph  # noqa: F401
from .reporting.plots import LAYERS_PNG as PLOT_NAME  # noqa: F401
