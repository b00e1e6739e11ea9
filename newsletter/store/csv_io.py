"""CSV import and export of the subscriber list.

An import reads the whole file first (UTF-8, with or without BOM; LF or CRLF; RFC 4180 quoting),
decides an outcome for every row against the addresses already known, then writes all new
people and changed names in one transaction, so a failed import leaves nothing half-done and a
second import of the same file changes nothing. An export re-imports to the same list; an
``excel`` export starts with a byte order mark, which Excel needs to read UTF-8 (accents) right.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from newsletter.errors import ImportFileError, InvalidNameError, SubscriberError
from newsletter.models import SubscriberStatus, TopicMode
from newsletter.store.subscribers import SubscriberStore
from newsletter.store.values import (
    canonical_topics,
    clean_name,
    email_hash,
    new_subscriber_values,
    normalise_email,
    parse_topic_mode,
)
from newsletter.values.clock import as_utc, now_utc

EXPORT_COLUMNS = ("email", "name", "status", "topics", "topic_mode", "subscribed_at")
TOPIC_SEPARATOR = ";"  # topic names contain commas ("Attendance, Attrition, and Drop-Out")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets run as a formula
_PROGRESS_EVERY = 2000
# How mailable a status is: an import never makes a person more mailable than the file says.
_MAILABILITY_RANK = {SubscriberStatus.ACTIVE: 0, SubscriberStatus.PENDING: 1}

_ADDED_AS = {status: f"as {status.value}" for status in SubscriberStatus}

ProgressCallback = Callable[[int, int], None]  # (lines read, lines in the file)


class Outcome(enum.StrEnum):
    ADDED = "added"  # a new person, now on the list
    UPDATED = "updated"  # already on the list (not suppressed); the file gives a different name
    DUPLICATE = "duplicate"  # earlier in the file, or already on the list unchanged
    INVALID = "invalid"  # no usable address (or a bad value); see the reason
    SUPPRESSED = "suppressed"  # unsubscribed, bounced, complained or forgotten: left alone


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of one CSV row (``line`` is where the row starts in the file)."""

    line: int
    email: str
    outcome: Outcome
    reason: str = ""
    repeats: int | None = None  # a duplicate in the file: the line of its first appearance


@dataclass
class ImportReport:
    """Every row's outcome, and the counts; ``dry_run`` reports what an import would do."""

    path: Path
    dry_run: bool
    rows: list[RowOutcome] = field(default_factory=list)
    written: bool = False  # False for a dry run, a refused --strict import, or nothing to change

    @property
    def counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    @property
    def invalid(self) -> list[RowOutcome]:
        return [row for row in self.rows if row.outcome is Outcome.INVALID]

    @property
    def repeated(self) -> list[RowOutcome]:
        """The rows whose address appeared earlier in the file."""
        return [row for row in self.rows if row.repeats is not None]

    @property
    def changed(self) -> bool:
        counts = self.counts
        return bool(counts[Outcome.ADDED] or counts[Outcome.UPDATED])

    def summary(self) -> str:
        counts = self.counts
        return ", ".join(f"{counts[outcome]} {outcome.value}" for outcome in Outcome)


@dataclass(frozen=True)
class _Columns:
    email: int
    name: int | None
    status: int | None
    topics: int | None
    subscribed_at: int | None
    topic_mode: int | None = None


# --- reading the file --------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError as err:
        raise ImportFileError(f"{path}: is a folder, not a CSV file") from err
    except OSError as err:
        raise ImportFileError(f"{path}: cannot be read: {err.strerror or err}") from err
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
            "save the file as CSV UTF-8 and import it again"
        ) from err


def _records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, its fields) for every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for fields in reader:
            if any(value.strip() for value in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as err:
        raise ImportFileError(f"{path}:{start}: not valid CSV: {err}") from err


def _columns(path: Path, header: list[str]) -> _Columns:
    names = [unescape_cell(value).strip().lower() for value in header]

    def find(name: str) -> int | None:
        found = [index for index, value in enumerate(names) if value == name]
        if len(found) > 1:
            raise ImportFileError(f"{path}:1: the column {name!r} appears {len(found)} times")
        return found[0] if found else None

    email = find("email")
    if email is None:
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = "; separate the columns with commas"
        raise ImportFileError(
            f"{path}:1: no `email` column in the header row "
            f"(found: {', '.join(repr(value) for value in header) or 'nothing'}){hint}"
        )
    return _Columns(
        email,
        find("name"),
        find("status"),
        find("topics"),
        find("subscribed_at"),
        find("topic_mode"),
    )


def _guarded(value: str) -> bool:
    """True when an export guards ``value``: it starts a formula, past any apostrophes of its own.

    Counting a value's own leading apostrophes keeps the guard reversible: ``'=Smith`` is
    exported as ``''=Smith`` and comes back as ``'=Smith``, not ``=Smith``.
    """
    return value.lstrip("'").startswith(_FORMULA_STARTS)


def unescape_cell(value: str) -> str:
    """Undo ``escape_cell`` exactly: drop the one apostrophe an export put before a formula."""
    return value[1:] if value.startswith("'") and _guarded(value) else value


def escape_cell(value: str) -> str:
    """Keep spreadsheets from running a cell as a formula (CSV injection) by an apostrophe."""
    return "'" + value if _guarded(value) else value


# --- deciding each row -------------------------------------------------------------------------


@dataclass
class _Plan:
    status: SubscriberStatus
    known: dict[str, tuple[int, str | None, SubscriberStatus]]
    known_topics: Collection[str] | None = None
    first_line: dict[str, int] = field(default_factory=dict)
    # compact (address, name, status, topics, subscribed_at) rows; dicts are made while writing
    new: list[tuple[str, str | None, SubscriberStatus, list[str], datetime, TopicMode]] = field(
        default_factory=list
    )
    renames: list[tuple[int, str | None]] = field(default_factory=list)
    source_detail: str = ""
    at: datetime = field(default_factory=now_utc)


def _cell(fields: list[str], index: int | None) -> str:
    if index is None or index >= len(fields):
        return ""
    return unescape_cell(fields[index])


def _row_status(raw: str, default: SubscriberStatus) -> SubscriberStatus:
    """The file's status for a new row when it is less mailable than ``default``."""
    if not raw:
        return default
    try:
        given = SubscriberStatus(raw.strip().lower())
    except ValueError:
        return default
    if given.is_suppressed or _MAILABILITY_RANK[given] > _MAILABILITY_RANK[default]:
        return given
    return default


def _subscribed_at(raw: str, default: datetime) -> datetime:
    if not raw.strip():
        return default
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError as err:
        raise SubscriberError(f"subscribed_at {raw.strip()!r} is not an ISO 8601 date") from err
    return as_utc(value)


def _decide(plan: _Plan, line: int, fields: list[str], columns: _Columns) -> RowOutcome:
    raw_email = _cell(fields, columns.email).strip()
    try:
        address = normalise_email(raw_email)
        name = clean_name(_cell(fields, columns.name))
    except InvalidNameError as err:
        return RowOutcome(line, raw_email, Outcome.INVALID, f"name: {err.problem}")
    except SubscriberError as err:
        return RowOutcome(line, raw_email, Outcome.INVALID, str(err))
    key = email_hash(address)
    if key in plan.first_line:
        first = plan.first_line[key]
        return RowOutcome(
            line, address, Outcome.DUPLICATE, f"duplicate of line {first}", repeats=first
        )
    plan.first_line[key] = line
    if key in plan.known:
        return _existing(plan, line, address, name, plan.known[key])
    try:
        row_status = _row_status(_cell(fields, columns.status), plan.status)
        topic_cell = _cell(fields, columns.topics)
        topics = (
            canonical_topics(topic_cell.split(TOPIC_SEPARATOR), plan.known_topics)
            if topic_cell
            else []
        )
        subscribed_at = _subscribed_at(_cell(fields, columns.subscribed_at), plan.at)
        mode_cell = _cell(fields, columns.topic_mode)
        topic_mode = parse_topic_mode(mode_cell) if mode_cell else TopicMode.ALL
    except SubscriberError as err:
        del plan.first_line[key]
        return RowOutcome(line, address, Outcome.INVALID, str(err))
    plan.new.append((address, name, row_status, topics, subscribed_at, topic_mode))
    return RowOutcome(line, address, Outcome.ADDED, _ADDED_AS[row_status])


def _new_rows(plan: _Plan) -> Iterator[dict[str, Any]]:
    for address, name, status, topics, subscribed_at, topic_mode in plan.new:
        row = new_subscriber_values(
            address,
            name=None,  # already checked by clean_name in _decide: not twice
            status=status,
            source="import",
            source_detail=plan.source_detail,
            ip=None,
            topics=topics,
            at=subscribed_at,
            topic_mode=topic_mode,
        )
        row["name"] = name
        yield row


def _existing(
    plan: _Plan,
    line: int,
    address: str,
    name: str | None,
    known: tuple[int, str | None, SubscriberStatus],
) -> RowOutcome:
    subscriber_id, old_name, status = known
    if status.is_suppressed:
        return RowOutcome(line, address, Outcome.SUPPRESSED, status.value)
    if name is not None and name != old_name:
        plan.renames.append((subscriber_id, name))
        return RowOutcome(line, address, Outcome.UPDATED, f"name {old_name!r} → {name!r}")
    return RowOutcome(line, address, Outcome.DUPLICATE, "already on the list")


def import_csv(
    store: SubscriberStore,
    path: Path | str,
    *,
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    dry_run: bool = False,
    strict: bool = False,
    known_topics: Collection[str] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import a CSV of people (``email`` column required, ``name`` optional) in one transaction.

    With ``strict``, any invalid row means nothing is written. A ``topics`` column (as an export
    writes it) is checked against ``known_topics`` when given.
    """
    if status not in _MAILABILITY_RANK:
        raise SubscriberError(f"imported people are active or pending, not {status}")
    path = Path(path)
    text = _read_text(path)
    total_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    records = _records(path, text)
    header = next(records, None)
    if header is None:
        raise ImportFileError(f"{path}:1: the file is empty; expected a header row with `email`")
    columns = _columns(path, header[1])
    plan = _Plan(
        status=status,
        known=store.known_addresses(),
        known_topics=known_topics,
        source_detail=path.name,
    )
    report = ImportReport(path=path, dry_run=dry_run)
    for count, (line, fields) in enumerate(records, start=1):
        report.rows.append(_decide(plan, line, fields, columns))
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(line, total_lines)
    refused = strict and any(row.outcome is Outcome.INVALID for row in report.rows)
    if not dry_run and not refused and (plan.new or plan.renames):
        store.bulk_apply(
            _new_rows(plan), plan.renames, source="import", source_detail=plan.source_detail
        )
        report.written = True
    if progress is not None:
        progress(total_lines, total_lines)
    return report


# --- export ------------------------------------------------------------------------------------


def export_row(values: Mapping[str, str]) -> list[str]:
    return [escape_cell(values[column]) for column in EXPORT_COLUMNS]


EXCEL_BOM = "\ufeff"  # UTF-8's byte order mark: without it Excel reads the file as ANSI


def export_csv(
    store: SubscriberStore,
    out: TextIO,
    *,
    status: SubscriberStatus | None = None,
    excel: bool = False,
) -> int:
    """Write the list (or the people in ``status``) as CSV; returns how many rows were written.

    ``excel``: a byte order mark first and CRLF line ends, as Excel's own "CSV UTF-8" files have
    (``out`` must encode UTF-8); the formula guard is the same either way.
    """
    if excel:
        out.write(EXCEL_BOM)
    writer = csv.writer(out, lineterminator="\r\n" if excel else "\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for subscriber in store.iter_all(status):
        subscribed_at = subscriber.subscribed_at
        writer.writerow(
            export_row(
                {
                    "email": subscriber.email,
                    "name": subscriber.name or "",
                    "status": subscriber.status.value,
                    "topics": TOPIC_SEPARATOR.join(subscriber.topics),
                    "topic_mode": subscriber.topic_mode.value,
                    "subscribed_at": subscribed_at.isoformat() if subscribed_at else "",
                }
            )
        )
        written += 1
    return written
