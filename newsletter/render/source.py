"""The short source line under an article's title: ``Journal · 2020``."""

from __future__ import annotations

import re

from newsletter.doi.record import Record

_ITALIC_RE = re.compile(r"(?<![*\w])[*_]([^*_]+)[*_](?![*\w])")  # APA sets the journal in italics
_VOLUME_RE = re.compile(r",\s*\d[\w\s()-]*$")
_YEAR_RE = re.compile(r"\((\d{4})[a-z]?[,)]")


def source_line(citation: str, record: Record | None = None) -> str:
    """The journal and year, from the DOI's stored record, else read off the citation; "" if neither."""
    journal = (record.journal if record else "") or _journal(citation)
    year = (record.year if record else None) or _year(citation)
    return " · ".join(part for part in (journal, str(year or "")) if part)


def _journal(citation: str) -> str:
    match = _ITALIC_RE.search(citation)
    journal = _VOLUME_RE.sub("", match.group(1)) if match else ""  # "*Psychotherapy, 55*(4)"
    return journal.strip().rstrip(".,;:")


def _year(citation: str) -> int | None:
    match = _YEAR_RE.search(citation)
    return int(match.group(1)) if match else None
