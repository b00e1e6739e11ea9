"""A DOI's metadata, normalised from Crossref's ``/works/{doi}`` and Unpaywall's ``/v2/{doi}``.

The stored form is CSL-JSON (the fields citeproc and reference managers read) plus the updates
(retractions, corrections, expressions of concern) and the free full text, so a record file is
small, stable in git and the same on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Crossref update types (``updated-by[].type``) and how this package names them.
RETRACTION = "retraction"
CORRECTION = "correction"
CONCERN = "expression_of_concern"
_UPDATE_KINDS = {
    "retraction": RETRACTION,
    "withdrawal": RETRACTION,
    "removal": RETRACTION,
    "correction": CORRECTION,
    "corrigendum": CORRECTION,
    "erratum": CORRECTION,
    "addendum": CORRECTION,
    "clarification": CORRECTION,
    "expression_of_concern": CONCERN,
    "expression-of-concern": CONCERN,
}
UPDATE_LABELS = {
    RETRACTION: "Retraction",
    CORRECTION: "Correction",
    CONCERN: "Expression of concern",
}


@dataclass(frozen=True)
class Author:
    family: str
    given: str = ""


@dataclass(frozen=True)
class Update:
    """A notice about the work: its kind, the notice's DOI and date (``YYYY-MM-DD``)."""

    kind: str  # RETRACTION, CORRECTION or CONCERN
    doi: str
    date: str
    source: str = ""  # "publisher", "retraction-watch"

    @property
    def label(self) -> str:
        return UPDATE_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Record:
    """One work's metadata as stored: CSL-JSON fields, updates, free full text, when fetched."""

    doi: str
    type: str = "article-journal"
    title: str = ""
    authors: tuple[Author, ...] = ()
    journal: str = ""
    issued: tuple[int, ...] = ()  # (year, month, day), as many parts as known
    volume: str = ""
    issue: str = ""
    page: str = ""
    number: str = ""  # an article number instead of pages
    updates: tuple[Update, ...] = ()
    free_url: str | None = None  # a legal free copy (Unpaywall's best OA location)
    fetched_at: str = ""  # ISO 8601 UTC of the last fetch
    note: str = ""  # e.g. "written by hand from the citation, not fetched"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def year(self) -> int | None:
        return self.issued[0] if self.issued else None

    @property
    def retractions(self) -> tuple[Update, ...]:
        return tuple(update for update in self.updates if update.kind == RETRACTION)

    @property
    def notices(self) -> tuple[Update, ...]:
        """Corrections and expressions of concern: shown beside the article."""
        return tuple(update for update in self.updates if update.kind != RETRACTION)

    def csl(self) -> dict[str, Any]:
        """The record as CSL-JSON (for citeproc-py), with ``id`` the DOI."""
        item: dict[str, Any] = {"id": self.doi, "type": self.type, "DOI": self.doi}
        if self.title:
            item["title"] = self.title
        if self.authors:
            item["author"] = [_csl_name(author) for author in self.authors]
        if self.journal:
            item["container-title"] = self.journal
        if self.issued:
            item["issued"] = {"date-parts": [list(self.issued)]}
        for key, value in (
            ("volume", self.volume),
            ("issue", self.issue),
            ("page", self.page),
            ("number", self.number),
        ):
            if value:
                item[key] = value
        return item

    def to_json(self) -> dict[str, Any]:
        """The stored form (``store.py`` writes it sorted and indented)."""
        data: dict[str, Any] = {}
        if self.note:
            data["note"] = self.note
        data.update(self.csl())
        del data["id"]
        data["fetched_at"] = self.fetched_at
        data["updates"] = [
            {
                "type": u.kind,
                "DOI": u.doi,
                "date": u.date,
                **({"source": u.source} if u.source else {}),
            }
            for u in self.updates
        ]
        data["free_url"] = self.free_url
        return data


def _csl_name(author: Author) -> dict[str, str]:
    return (
        {"family": author.family, "given": author.given}
        if author.given
        else {"family": author.family}
    )


def from_json(data: Mapping[str, Any]) -> Record:
    """A record from its stored form (the inverse of ``Record.to_json``)."""
    issued = data.get("issued", {}).get("date-parts", [[]])
    return Record(
        doi=str(data["DOI"]),
        type=str(data.get("type", "article-journal")),
        title=str(data.get("title", "")),
        authors=tuple(
            Author(str(a.get("family") or a.get("literal") or ""), str(a.get("given", "")))
            for a in data.get("author", ())
        ),
        journal=str(data.get("container-title", "")),
        issued=tuple(int(part) for part in (issued[0] if issued else []) if part is not None),
        volume=str(data.get("volume", "")),
        issue=str(data.get("issue", "")),
        page=str(data.get("page", "")),
        number=str(data.get("number", "")),
        updates=tuple(
            Update(str(u["type"]), str(u["DOI"]), str(u.get("date", "")), str(u.get("source", "")))
            for u in data.get("updates", ())
        ),
        free_url=data.get("free_url") or None,
        fetched_at=str(data.get("fetched_at", "")),
        note=str(data.get("note", "")),
    )


def from_crossref(message: Mapping[str, Any], *, fetched_at: str) -> Record:
    """A record from Crossref's work ``message`` (``GET /works/{doi}``)."""
    return Record(
        doi=str(message.get("DOI", "")),
        type=_csl_type(str(message.get("type", "journal-article"))),
        title=_first(message.get("title")),
        authors=tuple(
            Author(str(a.get("family") or a.get("name") or ""), str(a.get("given", "")))
            for a in message.get("author", ())
            if a.get("family") or a.get("name")
        ),
        journal=_first(message.get("container-title")),
        issued=_date_parts(message),
        volume=str(message.get("volume", "")),
        issue=str(message.get("issue", "")),
        page=str(message.get("page", "")),
        number=str(message.get("article-number", "")),
        updates=_updates(message.get("updated-by", ())),
        fetched_at=fetched_at,
    )


def with_unpaywall(record: Record, answer: Mapping[str, Any] | None) -> Record:
    """The record with Unpaywall's best legal free copy (or none)."""
    from dataclasses import replace

    url = None
    if answer and answer.get("is_oa"):
        best = answer.get("best_oa_location") or {}
        url = best.get("url_for_landing_page") or best.get("url") or best.get("url_for_pdf")
    if not (isinstance(url, str) and url.lower().startswith(("https://", "http://"))):
        url = None  # only web addresses go into a link
    return replace(record, free_url=url)


def _first(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(value[0]).split()) if value else ""
    return " ".join(str(value).split()) if value else ""


def _csl_type(crossref_type: str) -> str:
    return {"journal-article": "article-journal", "book-chapter": "chapter", "book": "book"}.get(
        crossref_type, "article-journal"
    )


def _date_parts(message: Mapping[str, Any]) -> tuple[int, ...]:
    """The publication date: print, then online, then ``issued`` (Crossref's earliest)."""
    for key in ("published-print", "published-online", "published", "issued"):
        parts = (message.get(key) or {}).get("date-parts") or [[]]
        found = tuple(int(part) for part in parts[0] if part is not None)
        if found:
            return found
    return ()


def _updates(entries: Sequence[Mapping[str, Any]]) -> tuple[Update, ...]:
    """Crossref's ``updated-by`` entries (publisher's and Retraction Watch's), one per notice."""
    seen: dict[tuple[str, str], Update] = {}
    for entry in entries:
        kind = _UPDATE_KINDS.get(str(entry.get("type", "")).lower())
        if kind is None:
            continue
        parts = ((entry.get("updated") or {}).get("date-parts") or [[]])[0]
        date = "-".join(f"{int(p):02d}" if i else str(int(p)) for i, p in enumerate(parts) if p)
        update = Update(kind, str(entry.get("DOI", "")), date, str(entry.get("source", "")))
        seen.setdefault((kind, update.doi.lower()), update)
    return tuple(sorted(seen.values(), key=lambda u: (u.date, u.doi)))
