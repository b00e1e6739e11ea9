"""The plain-text email: Markdown walked token by token into text wrapped at 72 columns.

Links become numbered references (``words [1]``) listed at the end of the email; nothing is
HTML-escaped, so ``<script>`` and ``a < b & c`` read exactly as the author typed them.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from markdown_it.tree import SyntaxTreeNode

from newsletter import markdown
from newsletter.render.jinja import render_template

WIDTH = 72
TEMPLATE = "email/email.txt.j2"
_GLUE = "\ue000"  # a private-use character that keeps "word [1]" on one line while wrapping
_BLANK_RUNS = re.compile(r"\n{3,}")


class TextWriter:
    """Turns one email's Markdown into text, numbering every link target once, in order of use."""

    def __init__(self, width: int = WIDTH) -> None:
        self.width = width
        self.links: list[str] = []

    def reference(self, url: str) -> int:
        """The number of ``url`` in the list at the end; a repeated link keeps its first number."""
        if url not in self.links:
            self.links.append(url)
        return self.links.index(url) + 1

    def wrap(self, text: str, indent: str = "", first: str | None = None) -> str:
        """Fill plain text to the width; words longer than a line (URLs) are never broken.

        ``indent`` starts every line, unless ``first`` is given for the first one (``"1. "``)."""
        return "\n".join(self._wrap(text, self.width, indent if first is None else first, indent))

    def block(self, source: str) -> str:
        """Block Markdown (paragraphs, lists, quotes, code) → wrapped text, blocks a blank line apart."""
        root = SyntaxTreeNode(markdown.parse(source))
        return "\n".join(self._blocks(root.children, self.width)).rstrip("\n")

    def inline(self, source: str, first: str = "", rest: str = "") -> str:
        """One line of inline Markdown (a citation) → wrapped text; ``first`` starts it, ``rest``
        indents its other lines (``"1. "`` and ``"   "`` for a list item)."""
        tokens = markdown.parse_inline(source)
        root = SyntaxTreeNode(tokens[0].children or []) if tokens else None
        text = self._inline(root.children) if root else ""
        return "\n".join(self._wrap(text, self.width, first, rest))

    def link_list(self) -> str:
        """``[1] https://…`` lines for every link used so far."""
        return "\n".join(f"[{number}] {url}" for number, url in enumerate(self.links, start=1))

    # --- blocks -------------------------------------------------------------------------------

    def _blocks(self, nodes: list[SyntaxTreeNode], width: int) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            if lines and not (node.type == "paragraph" and node.hidden):
                lines.append("")
            lines.extend(self._block(node, width))
        return lines

    def _block(self, node: SyntaxTreeNode, width: int) -> list[str]:
        if node.type in ("paragraph", "heading"):
            return self._wrap(self._inline_of(node), width, "", "")
        if node.type in ("bullet_list", "ordered_list"):
            return self._list(node, width)
        if node.type == "blockquote":
            return [f"> {line}".rstrip() for line in self._blocks(node.children, width - 2)]
        if node.type in ("code_block", "fence"):
            return ["    " + line for line in node.content.rstrip("\n").split("\n")]
        if node.type == "hr":
            return ["* * *"]
        return self._wrap(node.content, width, "", "")

    def _list(self, node: SyntaxTreeNode, width: int) -> list[str]:
        start = int(str(node.attrs.get("start", 1)))
        lines: list[str] = []
        for index, item in enumerate(node.children):
            marker = "- " if node.type == "bullet_list" else f"{start + index}. "
            body = self._blocks(item.children, width - len(marker)) or [""]
            lines.append(marker + body[0])
            lines.extend((" " * len(marker) + line) if line else "" for line in body[1:])
        return lines

    # --- inline ---------------------------------------------------------------------------------

    def _inline_of(self, node: SyntaxTreeNode) -> str:
        return "".join(self._inline(child.children) for child in node.children)

    def _inline(self, nodes: list[SyntaxTreeNode]) -> str:
        return "".join(self._span(node) for node in nodes)

    def _span(self, node: SyntaxTreeNode) -> str:
        if node.type in ("text", "code_inline"):
            return node.content
        if node.type == "softbreak":
            return " "
        if node.type == "hardbreak":
            return "\n"
        if node.type == "link":
            return self._link(node)
        if node.type == "image":
            alt = self._inline(node.children) or "image"
            return f"[{alt}]{_GLUE}[{self.reference(str(node.attrs.get('src', '')))}]"
        return self._inline(node.children)  # em, strong: the words without the markers

    def _link(self, node: SyntaxTreeNode) -> str:
        href = str(node.attrs.get("href", ""))
        label = self._inline(node.children)
        if node.markup == "autolink" or label.strip() in (href, href.removeprefix("mailto:")):
            return label  # the address is the text already: no reference needed
        return f"{label}{_GLUE}[{self.reference(href)}]"

    # --- wrapping -------------------------------------------------------------------------------

    def _wrap(self, text: str, width: int, first: str, rest: str) -> list[str]:
        lines: list[str] = []
        for segment in text.split("\n"):  # hard line breaks the author asked for
            lines.extend(
                textwrap.wrap(
                    segment,
                    width=max(width, 20),
                    initial_indent=first if not lines else rest,
                    subsequent_indent=rest,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                or [""]
            )
        return [line.replace(_GLUE, " ") for line in lines]


def render_text(templates_dir: Path, context: dict[str, Any]) -> str:
    """The plain-text email from ``templates/email/email.txt.j2``, tidied: no trailing spaces."""
    writer = TextWriter()
    raw = render_template(templates_dir, TEMPLATE, {**context, "text": writer})
    lines = [line.rstrip() for line in raw.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"
