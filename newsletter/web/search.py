"""Search over the archive's articles: titles, summaries and citations.

One list of ``Document`` values serves both ways of searching: ``search`` answers
``/archive/search/?q=`` in ``newsletter serve``, and ``index_json`` is the prebuilt index the
static export ships with ``search.js`` (same matching rule: every word of the query must occur
in the article's folded text, so both give the same answers).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from newsletter import markdown

QUERY_MAX = 200  # characters of a query that are looked at; more is not a search, it is a paste
RESULTS_MAX = 50
SNIPPET_MAX = 220


@dataclass(frozen=True)
class Document:
    """One article as search sees it; ``href`` is relative to the archive's root."""

    title: str
    href: str  # "2021-01/#article-2"
    issue: str  # the issue's subject
    month_label: str  # "January 2021"
    citation: str  # plain text
    snippet: str  # the summary's first words, plain text
    text: str  # title, citation and summary, folded (see ``fold``)

    def as_json(self) -> dict[str, str]:
        return {
            "title": self.title,
            "href": self.href,
            "issue": self.issue,
            "month": self.month_label,
            "citation": self.citation,
            "snippet": self.snippet,
            "text": self.text,
        }


def fold(text: str) -> str:
    """Lower case, accents dropped, spaces collapsed: "Müller  Café" → "muller cafe"."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(bare.casefold().split())


def plain_text(source: str) -> str:
    """The words of a Markdown text, without its markup (link texts kept, addresses dropped)."""
    words: list[str] = []
    for token in markdown.parse(source):
        for child in token.children or ():
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
        if token.type.endswith("_close") and token.block:
            words.append(" ")
    return " ".join("".join(words).split())


def document(
    *, title: str, href: str, issue: str, month_label: str, citation: str, summary: str
) -> Document:
    citation_text = plain_text(citation)
    summary_text = plain_text(summary)
    snippet = summary_text
    if len(snippet) > SNIPPET_MAX:
        snippet = snippet[: SNIPPET_MAX - 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
    return Document(
        title=title,
        href=href,
        issue=issue,
        month_label=month_label,
        citation=citation_text,
        snippet=snippet,
        text=fold(f"{title} {citation_text} {summary_text}"),
    )


def query_words(query: str) -> list[str]:
    """The folded words of a query (at most ``QUERY_MAX`` characters are read)."""
    return fold(query[:QUERY_MAX]).split()


def search(documents: Iterable[Document], query: str) -> list[Document]:
    """Documents holding every word of ``query``; those with a word in the title first, then in
    the given order (newest issue first), at most ``RESULTS_MAX``."""
    words = query_words(query)
    if not words:
        return []
    found = [doc for doc in documents if all(word in doc.text for word in words)]
    in_title = [doc for doc in found if any(word in fold(doc.title) for word in words)]
    rest = [doc for doc in found if doc not in in_title]
    return (in_title + rest)[:RESULTS_MAX]


def index_json(documents: Sequence[Document]) -> str:
    """The static export's search index: ``{"articles": [...]}``, newest issue first."""
    return json.dumps(
        {"articles": [doc.as_json() for doc in documents]}, ensure_ascii=False, indent=0
    )
