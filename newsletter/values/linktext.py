"""Link text that tells a screen-reader user nothing: "click here", "read more", a bare address.

Screen readers list a page's links by their text alone (WCAG 2.1 success criterion 2.4.4), so a
link must say where it leads. Shared by the issue file's check and the rendered email's.
"""

from __future__ import annotations

import re

GENERIC_LINK_TEXTS = frozenset(
    {
        "click",
        "click here",
        "continue",
        "continue reading",
        "details",
        "go",
        "here",
        "learn more",
        "link",
        "more",
        "more info",
        "read more",
        "read this",
        "this",
        "this link",
        "this page",
    }
)
URL_TEXT_RE = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
DOI_PREFIXES = ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/")


def link_text_problem(text: str, href: str) -> str | None:
    """Why a link's text tells a screen-reader user nothing, or None when it is fine.

    A DOI shown as its https://doi.org/ address is fine: that is how APA style writes a DOI.
    """
    words = " ".join(text.split())
    folded = words.casefold().strip(" .:!?…>»→")
    if not folded:
        return "has no text"
    if folded in GENERIC_LINK_TEXTS:
        return f'says only "{words}"'
    if URL_TEXT_RE.fullmatch(words) and not href.lower().startswith(DOI_PREFIXES):
        return "is a bare address"
    return None
