"""References readers can save: RIS and BibTeX files and Highwire ``citation_*`` meta tags.

Built from the stored records (Crossref's metadata), never from the hand-typed Citation lines.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

from newsletter.doi.record import Record
from newsletter.values.doi import doi_url

_RIS_TYPES = {"article-journal": "JOUR", "chapter": "CHAP", "book": "BOOK"}
_BIB_TYPES = {"article-journal": "article", "chapter": "incollection", "book": "book"}


def _pages(record: Record) -> tuple[str, str]:
    """First and last page ("461-472", "461–472"), or the article number as the first."""
    if record.page:
        parts = re.split(r"\s*[-–—]\s*", record.page, maxsplit=1)
        return parts[0], parts[1] if len(parts) > 1 else ""
    return record.number, ""


def ris(records: Sequence[Record]) -> str:
    """The records as one RIS file (``TY  - JOUR`` … ``ER  -``), CRLF-free, UTF-8."""
    lines: list[str] = []
    for record in records:
        first, last = _pages(record)
        lines.append(f"TY  - {_RIS_TYPES.get(record.type, 'JOUR')}")
        lines += [f"AU  - {_name(a.family, a.given)}" for a in record.authors]
        lines += _tags(
            ("TI", record.title),
            ("T2", record.journal),
            ("JO", record.journal),
            ("PY", str(record.year or "")),
            ("DA", "/".join(f"{p:02d}" if i else str(p) for i, p in enumerate(record.issued))),
            ("VL", record.volume),
            ("IS", record.issue),
            ("SP", first),
            ("EP", last),
            ("DO", record.doi),
            ("UR", doi_url(record.doi)),
        )
        lines += ["ER  - ", ""]
    return "\n".join(lines)


def _tags(*pairs: tuple[str, str]) -> list[str]:
    return [f"{tag}  - {' '.join(value.split())}" for tag, value in pairs if value]


def _name(family: str, given: str) -> str:
    return f"{family}, {given}" if given else family


def bibtex(records: Sequence[Record]) -> str:
    """The records as BibTeX entries, keys ``surnameYEARfirstword`` (made unique)."""
    entries: list[str] = []
    keys: set[str] = set()
    for record in records:
        key = _unique(_key(record), keys)
        first, last = _pages(record)
        pages = f"{first}--{last}" if last else first
        fields = [
            ("author", " and ".join(_name(a.family, a.given) for a in record.authors)),
            ("title", "{" + _bib_escape(record.title) + "}"),
            ("journal", _bib_escape(record.journal)),
            ("year", str(record.year or "")),
            ("volume", record.volume),
            ("number", record.issue),
            ("pages", pages),
            ("doi", record.doi),
            ("url", doi_url(record.doi)),
        ]
        body = ",\n".join(
            f"  {name} = {{{value if name in ('title', 'journal') else _bib_escape(value)}}}"
            for name, value in fields
            if value
        )
        entries.append(f"@{_BIB_TYPES.get(record.type, 'article')}{{{key},\n{body}\n}}\n")
    return "\n".join(entries)


def _key(record: Record) -> str:
    surname = record.authors[0].family if record.authors else "anon"
    word = next((w for w in re.findall(r"\w+", record.title) if len(w) > 3), "")
    raw = f"{surname}{record.year or ''}{word}".lower()
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_only) or "ref"


def _unique(key: str, taken: set[str]) -> str:
    candidate, suffix = key, ord("a")
    while candidate in taken:
        candidate, suffix = f"{key}{chr(suffix)}", suffix + 1
    taken.add(candidate)
    return candidate


def _bib_escape(text: str) -> str:
    text = " ".join(text.split())
    text = text.replace("\\", r"\textbackslash{}")
    text = re.sub(r"([{}&%$#_])", r"\\\1", text)
    return text.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")


def highwire_tags(records: Sequence[Record]) -> str:
    """``<meta name="citation_…">`` tags per article (what Google Scholar and Zotero read)."""
    tags: list[str] = []
    for record in records:
        first, last = _pages(record)
        pairs = [("citation_title", record.title)]
        pairs += [("citation_author", _name(a.family, a.given)) for a in record.authors]
        pairs += [
            ("citation_doi", record.doi),
            ("citation_journal_title", record.journal),
            (
                "citation_publication_date",
                "/".join(f"{p:02d}" if i else str(p) for i, p in enumerate(record.issued)),
            ),
            ("citation_volume", record.volume),
            ("citation_issue", record.issue),
            ("citation_firstpage", first),
            ("citation_lastpage", last),
        ]
        tags += [
            f'<meta name="{name}" content="{html.escape(" ".join(value.split()), quote=True)}">'
            for name, value in pairs
            if value
        ]
    return "\n".join(tags)
