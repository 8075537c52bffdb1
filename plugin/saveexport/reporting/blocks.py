"""A report as a list of blocks, each Markdown with an optional HTML form of its own: the sections write
once, the Markdown file and the HTML page read the same list."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Block:
    markdown: str
    html: str | None = None  # None: the page converts the Markdown


@dataclass
class Blocks:
    items: list[Block] = field(default_factory=list)

    def __call__(self, markdown: str) -> None:
        """`add(text)`: a Markdown block the page converts as it is."""
        self.items.append(Block(markdown))

    def both(self, markdown: str, html: str) -> None:
        """A block whose page form says more than Markdown can (colours, links, <details>)."""
        self.items.append(Block(markdown, html))

    def fold(self, summary: str) -> None:
        """What follows, up to `end_fold()`, is folded away under `summary` (GitHub renders <details> too)."""
        import html

        self.items.append(Block(f"<details><summary>{html.escape(summary)}</summary>\n",
                                f"<details><summary>{html.escape(summary)}</summary>"))

    def end_fold(self) -> None:
        self.items.append(Block("</details>\n", "</details>"))

    def only_html(self, html: str) -> None:
        self.items.append(Block("", html))

    def markdown(self) -> str:
        return "\n".join(b.markdown for b in self.items if b.markdown or b.html is None) + "\n"
