"""One description, two renderings: the blocks a report section is made of, as HTML and
as Markdown.

A section is a title and a list of blocks (:class:`Text`, :class:`Bullets`, :class:`Code`,
:class:`Table`, :class:`Figure`). Whoever builds a section says *what* it shows once;
:func:`to_html` and :func:`to_markdown` say how it looks, so the two files of the report
cannot drift apart. Used by :mod:`globalpool.analysis.report` and
:mod:`globalpool.analysis.seeds`.

Example:
    >>> from globalpool.analysis.markup import Table, Text, to_markdown
    >>> print(to_markdown([Table(["Head", "Acc"], [["fc", "61.3%"]]), Text("Note.")]))
    | Head | Acc |
    |:--|--:|
    | fc | 61.3% |
    <BLANKLINE>
    Note.
    <BLANKLINE>
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Block",
    "Bullets",
    "Code",
    "Figure",
    "Section",
    "Table",
    "Text",
    "html_table",
    "markdown_table",
    "to_html",
    "to_markdown",
]

# Text styles: how each renders in HTML (a <p> with this class or markup) and Markdown.
_STYLES = {"": ("<p>", "</p>"), "meta": ('<p class="meta">', "</p>"),
           "note": ('<p class="note">', "</p>"), "strong": ("<p><b>", "</b></p>")}  # fmt: skip


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text.

    Attributes:
        text: the words (escaped in HTML; an empty text renders as nothing).
        style: ``""`` (plain), ``"meta"`` (an explanation, small and grey in HTML),
            ``"note"`` (a warning: a yellow box in HTML, a quote in Markdown) or
            ``"strong"`` (bold).
    """

    text: str
    style: str = ""

    def __post_init__(self):
        if self.style not in _STYLES:
            raise ValueError(f"unknown text style {self.style!r}; one of {sorted(_STYLES)}")


@dataclass(frozen=True)
class Bullets:
    """A bulleted list; items may hold ``<b>...</b>`` (bold), the only markup read."""

    items: Sequence[str]


@dataclass(frozen=True)
class Code:
    """Preformatted text (a command line, JSON); ``lang`` names it for Markdown."""

    text: str
    lang: str = ""


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells.

    Attributes:
        header: column titles.
        rows: one list of cell strings per row.
        table_id: the HTML ``id`` (tests and scripts find the table by it).
        text_cols: how many leading columns are text (left-aligned); the rest are numbers.
        marks: per row, an HTML class (``"best"``: green) or ``""``; only HTML shows them.
        legend: what the marks mean, shown under the table where they show (HTML).
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    table_id: str | None = None
    text_cols: int = 1
    marks: Sequence[str] | None = None
    legend: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG image with a caption: inline (base64) in HTML, a file beside the Markdown.

    Attributes:
        name: the file stem of the PNG beside the Markdown.
        caption: shown under the image (and its alternative text).
        png: the encoded image.
    """

    name: str
    caption: str
    png: bytes


Block = Text | Bullets | Code | Table | Figure


@dataclass
class Section:
    """A titled part of a report: ``anchor`` is its HTML id, ``blocks`` what it shows."""

    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


# --------------------------------------------------------------------------- tables
def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    table_id: str | None = None,
    text_cols: int = 1,
    row_classes: Sequence[str] | None = None,
) -> str:
    """An HTML table in a horizontally scrolling ``<div class="scroll">``; cells escaped."""
    e = html.escape
    out = [f'<div class="scroll"><table{f" id={chr(34)}{table_id}{chr(34)}" if table_id else ""}>']
    out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="text">{e(c)}</td>' if j < text_cols else f"<td>{e(c)}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int = 1) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def esc(s):
        return str(s).replace("|", "\\|")

    align = [":--" if j < text_cols else "--:" for j in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML
def _inline_html(text: str) -> str:
    """Escape ``text`` but keep its ``<b>``/``</b>``."""
    return html.escape(text).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")


def _block_html(block: Block) -> str:
    e = html.escape
    if isinstance(block, Text):
        start, end = _STYLES[block.style]
        return f"{start}{e(block.text)}{end}" if block.text else ""
    if isinstance(block, Bullets):
        items = "".join(f"<li>{_inline_html(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>" if block.items else ""
    if isinstance(block, Code):
        return f"<pre>{e(block.text)}</pre>"
    if isinstance(block, Table):
        table = html_table(block.header, block.rows, table_id=block.table_id,
                           text_cols=block.text_cols, row_classes=block.marks)  # fmt: skip
        shown = block.legend and block.marks and any(block.marks)
        return table + (f'<p class="meta">{e(block.legend)}</p>' if shown else "")
    if isinstance(block, Figure):
        b64 = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img alt="{e(block.caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{e(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"not a report block: {block!r}")


def to_html(blocks: Sequence[Block]) -> str:
    """The blocks as an HTML fragment, one element per line (figures inline, base64)."""
    return "\n".join(part for part in map(_block_html, blocks) if part)


# --------------------------------------------------------------------------- Markdown
def _block_markdown(block: Block, assets: str) -> str:
    if isinstance(block, Text):
        if not block.text:
            return ""
        return {"note": f"> {block.text}", "strong": f"**{block.text}**"}.get(
            block.style, block.text
        )
    if isinstance(block, Bullets):
        return "\n".join(
            "- " + item.replace("<b>", "**").replace("</b>", "**") for item in block.items
        )
    if isinstance(block, Code):
        return f"```{block.lang}\n{block.text}\n```"
    if isinstance(block, Table):
        return markdown_table(block.header, block.rows, block.text_cols)
    if isinstance(block, Figure):
        return f"![{block.caption}]({assets}/{block.name}.png)\n\n*{block.caption}*"
    raise TypeError(f"not a report block: {block!r}")


def to_markdown(blocks: Sequence[Block], assets: str = ".") -> str:
    """The blocks as Markdown, a blank line between blocks; figures link to
    ``<assets>/<name>.png`` (writing those files is the caller's job)."""
    parts = [part for part in (_block_markdown(b, assets) for b in blocks) if part]
    return "".join(part + "\n\n" for part in parts)[:-1] if parts else ""
