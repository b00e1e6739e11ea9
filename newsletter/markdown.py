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
    text: str = ""  # what readers see: the link's text, or an image's alt text
    image: bool = False


_TEXT_TOKENS = ("text", "code_inline", "image")  # an image's content is its alt text


def links(text: str) -> Iterator[Link]:
    """Every link and image in ``text``: its target, the line it sits on, its text or alt text."""
    for block in _md_all_links.parse(text):
        line = block.map[0] if block.map else 0
        href: str | None = None  # of the link being read, whose text is gathered in ``words``
        words: list[str] = []
        for token in block.children or ():
            if token.type == "link_open":
                href, words = str(token.attrGet("href") or ""), []
            elif token.type == "link_close" and href is not None:
                yield Link(href, line, " ".join(words))
                href = None
            elif token.type in _TEXT_TOKENS and href is not None:
                words.append(token.content)
            if token.type == "image":
                yield Link(str(token.attrGet("src") or ""), line, token.content, image=True)


def is_safe_url(url: str) -> bool:
    return url.lower().startswith(SAFE_SCHEMES)
