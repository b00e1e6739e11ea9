"""The one CommonMark configuration of the project (markdown-it-py).

Raw HTML in an issue is shown as text, never passed through: ``html`` is off, so ``<script>``
comes out as ``&lt;script&gt;``. Used by the issue validator (links) and by the renderers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
# A second parser that keeps every link, whatever its scheme, so the validator can report the
# unsafe ones (the renderer's parser silently drops `javascript:` links).
_md_all_links = MarkdownIt("commonmark", {"html": False})
_md_all_links.validateLink = lambda url: True  # type: ignore[method-assign]

SAFE_SCHEMES = ("https:", "http:", "mailto:")


def to_html(text: str) -> str:
    """Block Markdown (paragraphs, lists, emphasis, links) → HTML, every character escaped."""
    return str(_md.render(text))


def inline_to_html(text: str) -> str:
    """One line of inline Markdown (a citation, say) → HTML without a wrapping ``<p>``."""
    return str(_md.renderInline(text))


def parse(text: str) -> list[Token]:
    """The token stream, for renderers that walk it (the plain-text renderer)."""
    return _md.parse(text)


def parse_inline(text: str) -> list[Token]:
    """The token stream of one line of inline Markdown (no lists or headings), e.g. a citation."""
    return _md.parseInline(text)


@dataclass(frozen=True)
class Link:
    url: str
    line: int  # 0-based line within the Markdown text


def links(text: str) -> Iterator[Link]:
    """Every link and image target in ``text``, with the line it sits on."""
    for block in _md_all_links.parse(text):
        line = block.map[0] if block.map else 0
        for token in block.children or ():
            if token.type == "link_open":
                yield Link(str(token.attrGet("href") or ""), line)
            elif token.type == "image":
                yield Link(str(token.attrGet("src") or ""), line)


def is_safe_url(url: str) -> bool:
    return url.lower().startswith(SAFE_SCHEMES)
