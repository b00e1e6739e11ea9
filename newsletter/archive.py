"""The archive copies of each sent issue, and reading them back for the web archive.

``archive/YYYY-MM/`` holds ``issue.md`` (the source file as written: the web archive builds the
issue's page from it, see ``newsletter.web.archive``), ``index.html`` (the email's HTML as sent,
with the personal links made generic: a record, and what tells the archive which DOI notices
readers already saw), ``email.txt`` (the text version, likewise), ``send.json`` (times,
transport, counts; no subscriber data, no secrets) and ``records/`` (the DOI records of its
articles, as when it was sent; ``doi watch`` updates them). Each file is written to a temporary
name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from newsletter.config import Links
from newsletter.doi.store import MetadataStore
from newsletter.models import Issue, LedgerStatus, Placeholder, RenderedIssue, personalise
from newsletter.values.month import is_month

WEB_FILE = "index.html"
TEXT_FILE = "email.txt"
SOURCE_FILE = "issue.md"
RECORD_FILE = "send.json"
RECORDS_DIR = "records"  # the articles' DOI records as sent (``doi watch`` refreshes them)


class SendInfo(Protocol):
    """What the archive needs of a ledger send record."""

    @property
    def subject(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue in the archive folder, as written when its send completed."""

    month: str
    subject: str
    started_at: datetime | None
    finished_at: datetime | None
    transport: str
    counts: Mapping[str, int]
    folder: Path

    @property
    def web_path(self) -> Path:
        return self.folder / WEB_FILE

    @property
    def text_path(self) -> Path:
        return self.folder / TEXT_FILE

    @property
    def source_path(self) -> Path:
        return self.folder / SOURCE_FILE


def generic_links(links: Links) -> dict[Placeholder, str]:
    """Links for copies that belong to no subscriber: the archive and test copies."""
    subscribe = f"{links.base_url}/subscribe"
    return {Placeholder.UNSUBSCRIBE_URL: subscribe, Placeholder.PREFERENCES_URL: subscribe}


def write_archive(
    archive_dir: Path,
    issue: Issue,
    rendered: RenderedIssue,
    *,
    links: Links,
    record: SendInfo,
    counts: Mapping[LedgerStatus, int],
) -> Path:
    """Write (or refresh) ``archive_dir/MONTH/``; return that folder."""
    folder = archive_dir / issue.month
    folder.mkdir(parents=True, exist_ok=True)
    generic = generic_links(links)
    source = issue.source or issue.path.read_text(encoding="utf-8")
    _write(folder / WEB_FILE, personalise(rendered.html, generic))
    _write(folder / TEXT_FILE, personalise(rendered.text, generic))
    _write(folder / SOURCE_FILE, source)
    _keep_records(issue, folder)
    _write(
        folder / RECORD_FILE,
        json.dumps(_send_json(issue, record, counts), indent=2, ensure_ascii=False) + "\n",
    )
    return folder


def _keep_records(issue: Issue, folder: Path) -> None:
    """Copy the issue's DOI records into ``folder/records/``: the archive page's references,
    meta tags and notices come from them, and ``newsletter doi watch`` refreshes them."""
    dois = [article.doi for article in issue.articles if article.doi]
    kept = MetadataStore(folder / RECORDS_DIR)
    for record in MetadataStore.beside(issue.path).records(dois).values():
        kept.put(record)


def _send_json(
    issue: Issue, record: SendInfo, counts: Mapping[LedgerStatus, int]
) -> dict[str, Any]:
    return {
        "issue": issue.month,
        "subject": record.subject,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "transport": record.transport,
        "counts": {str(status): int(count) for status, count in counts.items()},
    }


def _write(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` under a temporary name, then rename it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def list_archived(archive_dir: Path) -> list[ArchivedIssue]:
    """Every complete archive folder (one with a readable ``send.json``), newest month first."""
    if not archive_dir.is_dir():
        return []
    found = []
    for folder in archive_dir.iterdir():
        if folder.is_dir() and is_month(folder.name):
            archived = read_archived(folder)
            if archived is not None:
                found.append(archived)
    return sorted(found, key=lambda item: item.month, reverse=True)


def read_archived(folder: Path) -> ArchivedIssue | None:
    """The archived issue in ``folder``; None when its files are missing or unreadable."""
    if not all((folder / name).is_file() for name in (WEB_FILE, TEXT_FILE, SOURCE_FILE)):
        return None
    try:
        data = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        return ArchivedIssue(
            month=str(data.get("issue") or folder.name),
            subject=str(data["subject"]),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            transport=str(data.get("transport") or ""),
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            folder=folder,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
