"""After sending: re-check every DOI of the archive for new retractions, corrections and concerns.

``newsletter doi watch`` and the scheduler's monthly job (beside the send) call ``watch_archive``.
Each sent issue keeps its records in ``archive/YYYY-MM/records/``; a fresh record replaces the
kept one (and the one in ``issues/.metadata/``, if any), and every update not known before is a
``Change``. The archive page of that issue then shows a dated notice (``web/archive.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.archive import RECORDS_DIR, list_archived
from newsletter.doi.client import Client, NotFound, Unreachable
from newsletter.doi.record import Update
from newsletter.doi.store import FOLDER, MetadataStore
from newsletter.values.doi import DoiError, parse_doi

_DOI_LINE_RE = re.compile(r"^\s*doi\s*:\s*(\S.*?)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Change:
    """A notice that appeared for an article of a sent issue."""

    month: str
    doi: str
    update: Update

    def __str__(self) -> str:
        when = self.update.date or "undated"
        return (
            f"{self.month}: {self.doi}: new {self.update.label.lower()} {self.update.doi} ({when})"
        )


@dataclass
class WatchResult:
    changes: list[Change] = field(default_factory=list)
    checked: int = 0  # DOIs looked up
    not_found: list[str] = field(default_factory=list)
    failed: str | None = None  # why the look-ups stopped (no network)


def dois_in(source: str) -> list[str]:
    """The DOIs of an issue file's ``DOI:`` lines (those that parse), in order, once each."""
    found: list[str] = []
    for match in _DOI_LINE_RE.finditer(source):
        try:
            doi = parse_doi(match.group(1))
        except DoiError:
            continue
        if doi.lower() not in {known.lower() for known in found}:
            found.append(doi)
    return found


def watch_archive(archive_dir: Path, issues_dir: Path, client: Client) -> WatchResult:
    """Fetch every archived issue's DOIs again; keep the fresh records; list the new notices."""
    result = WatchResult()
    current = MetadataStore(issues_dir / FOLDER)
    for archived in sorted(list_archived(archive_dir), key=lambda item: item.month):
        kept = MetadataStore(archived.folder / RECORDS_DIR)
        try:
            source = archived.source_path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue
        for doi in dois_in(source):
            old = kept.get(doi) or current.get(doi)
            try:
                fresh = client.record(doi)
            except NotFound:
                result.not_found.append(f"{archived.month}: {doi}")
                continue
            except Unreachable as err:
                result.failed = str(err)
                return result
            result.checked += 1
            known = {(u.kind, u.doi.lower()) for u in (old.updates if old else ())}
            for update in fresh.updates:
                if (update.kind, update.doi.lower()) not in known:
                    result.changes.append(Change(archived.month, doi, update))
            kept.put(fresh)
            if current.get(doi) is not None:
                current.put(fresh)
    return result
