"""Digital Object Identifiers: normalise what an author pastes to a bare DOI, and link to it.

A leaf module: it imports nothing of the package, so ``models.Article.url``, the issue reader and
the templates share it without import cycles.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

__all__ = ["DoiError", "doi_url", "parse_doi"]

_PREFIX_RE = re.compile(r"doi:\s*|(?:https?://)?(?:dx\.|www\.)?doi\.org/", re.IGNORECASE)
_DOI_RE = re.compile(r"10\.\d+(?:\.\d+)*/.+", re.DOTALL)
# Characters a URL path may hold as they are (RFC 3986 sub-delims, ":" and "@"); quote() keeps
# letters, digits and "_.-~" too and percent-encodes everything else (<, >, #, %, ", ?, space …).
_PATH_SAFE = "/!$&'()*+,;=:@"
_LINE_BREAKS = ("Cc", "Zl", "Zp")  # Unicode categories of control characters and line separators
EXAMPLES = "10.1002/cpp.2509, doi:10.1002/cpp.2509 or https://doi.org/10.1002/cpp.2509"


class DoiError(ValueError):
    """Text that is not a DOI; the message says what was expected."""


def parse_doi(raw: str) -> str:
    """The bare DOI of ``10.x/…``, ``doi:10.x/…`` or ``https://doi.org/10.x/…``; DoiError if none."""
    text = raw.strip()
    prefix = _PREFIX_RE.match(text)
    doi = text[prefix.end() :] if prefix else text
    if prefix and "doi.org" in prefix.group(0).lower():
        doi = unquote(doi)  # a copied link may hold %3C for "<" and so on
    if any(unicodedata.category(char) in _LINE_BREAKS for char in doi):
        raise DoiError("a DOI cannot hold line breaks or control characters")
    if not _DOI_RE.fullmatch(doi):
        raise DoiError(
            f'"{_short(text)}" is not a DOI: expected 10.<digits>/<suffix>, e.g. {EXAMPLES}'
        )
    return doi


def doi_url(doi: str) -> str:
    """The https://doi.org/ link of a bare DOI, with the characters URLs reserve percent-encoded."""
    return "https://doi.org/" + quote(doi, safe=_PATH_SAFE)


def _short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut at ``limit`` characters, for an error message."""
    text = "".join(char if unicodedata.category(char) != "Cc" else " " for char in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
