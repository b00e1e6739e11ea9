"""Bulk writes: every address known and many new rows for CSV imports; many status changes at once."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.models import SubscriberStatus
from newsletter.store.schema import subscriber_events, subscribers
from newsletter.store.values import EVENT_KINDS, clean_name, subscribed_event
from newsletter.values.clock import now_utc

log = logging.getLogger(__name__)


def known_addresses(engine: sa.Engine) -> dict[str, tuple[int, str | None, SubscriberStatus]]:
    """Every address on the list by its hash: (id, name, status); forgotten ones as unsubscribed."""
    query = sa.select(
        subscribers.c.email_hash,
        subscribers.c.id,
        subscribers.c.name,
        subscribers.c.status,
        subscribers.c.forgotten_at,
    )
    known: dict[str, tuple[int, str | None, SubscriberStatus]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            status = SubscriberStatus(row.status)
            if row.forgotten_at is not None and not status.is_suppressed:
                status = SubscriberStatus.UNSUBSCRIBED
            known[row.email_hash] = (row.id, row.name, status)
    return known


def bulk_apply(
    engine: sa.Engine,
    new: Iterable[Mapping[str, Any]],
    renames: Iterable[tuple[int, str | None]],
    *,
    source: str,
    source_detail: str | None,
    chunk_size: int = 5000,
) -> int:
    """Insert new subscribers (``new_subscriber_values``) and rename others in ONE transaction.

    Returns how many were inserted. Each gets its ``subscribed`` event from one INSERT … SELECT.
    """
    at = now_utc()
    how = subscribed_event(0, SubscriberStatus.ACTIVE, source, source_detail, at)["reason"]
    inserted = 0
    with engine.begin() as conn:
        before = conn.scalar(sa.select(sa.func.max(subscribers.c.id))) or 0
        for chunk in _chunks(new, chunk_size):
            conn.execute(subscribers.insert(), [{**row, "updated_at": at} for row in chunk])
            inserted += len(chunk)
        if inserted:
            conn.execute(_subscribed_events_since(before, at, source, source_detail, how))
        _rename(conn, renames, at, source, source_detail)
    return inserted


def _rename(
    conn: sa.Connection,
    renames: Iterable[tuple[int, str | None]],
    at: datetime,
    source: str,
    source_detail: str | None,
) -> None:
    reason = "name changed" + (f" by {source_detail}" if source_detail else "")
    for chunk in _chunks(renames, 5000):
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("sid"))
            .values(name=sa.bindparam("new_name"), updated_at=at),
            [{"sid": sid, "new_name": clean_name(name)} for sid, name in chunk],
        )
        conn.execute(
            subscriber_events.insert(),
            [
                {
                    "subscriber_id": sid,
                    "at": at,
                    "kind": "updated",
                    "reason": reason,
                    "source": source,
                }
                for sid, _name in chunk
            ],
        )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _subscribed_events_since(
    before: int, at: datetime, source: str, source_detail: str | None, reason: str
) -> sa.Insert:
    """INSERT … SELECT of the ``subscribed`` events of the rows a bulk insert just made."""
    made_now = sa.select(
        subscribers.c.id,
        subscribers.c.updated_at,
        sa.literal("subscribed"),
        subscribers.c.status,
        sa.literal(reason[:500]),
        sa.literal(source),
    ).where(
        subscribers.c.id > before,
        subscribers.c.updated_at == at,
        subscribers.c.source == source,
        subscribers.c.source_detail.is_(None)
        if source_detail is None
        else subscribers.c.source_detail == source_detail[:500],
    )
    columns = ["subscriber_id", "at", "kind", "to_status", "reason", "source"]
    return subscriber_events.insert().from_select(columns, made_now)


# --- many status changes in one transaction (suppression sync, webhook posts) ----------------

# How strongly a status keeps a person off the list (``StatusChange.only_stronger``).
STRENGTH = {
    SubscriberStatus.PENDING: 0,
    SubscriberStatus.ACTIVE: 0,
    SubscriberStatus.UNSUBSCRIBED: 1,
    SubscriberStatus.BOUNCED: 2,
    SubscriberStatus.COMPLAINED: 3,
}
_IN_CHUNK = 500  # values in one IN (…): far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class StatusChange:
    """One status change for ``set_statuses``; recorded as a ``subscriber_events`` row.

    ``only_mailable``: change only a pending or active person (a suppression is left as it is).
    ``only_stronger``: never turn a suppression into a weaker one (a complaint stays a complaint).
    """

    subscriber_id: int
    status: SubscriberStatus
    reason: str
    source: str
    external_id: str | None = None
    only_mailable: bool = False
    only_stronger: bool = False


def set_statuses(conn: sa.Connection, changes: Sequence[StatusChange]) -> list[bool]:
    """Apply ``changes`` in order inside the caller's transaction; for each, whether it changed.

    The same rules as one ``set_status`` each, read with one query per 500 ids and written with
    two statements in all: an ``external_id`` seen before (or earlier in the batch) changes
    nothing, nor does a status the person has already; a forgotten person is only ever
    suppressed. Changes of one person apply in order, each seeing the one before.
    """
    if not changes:
        return []
    seen = _seen_external_ids(conn, {c.external_id for c in changes if c.external_id})
    current = _current(conn, {c.subscriber_id for c in changes})
    at = now_utc()
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    changed: list[bool] = []
    for change in changes:
        did = _decide(change, seen, current)
        changed.append(did)
        if not did:
            continue
        before = current[change.subscriber_id][0]
        current[change.subscriber_id] = (change.status, current[change.subscriber_id][1])
        if change.external_id is not None:
            seen.add(change.external_id)
        updates.append({"sid": change.subscriber_id, "new_status": change.status.value})
        events.append(
            {
                "subscriber_id": change.subscriber_id,
                "at": at,
                "kind": EVENT_KINDS[change.status],
                "from_status": before.value,
                "to_status": change.status.value,
                "reason": change.reason,
                "source": change.source,
                "external_id": change.external_id,
            }
        )
    if updates:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("sid"))
            .values(status=sa.bindparam("new_status"), updated_at=at),
            updates,
        )
        conn.execute(subscriber_events.insert(), events)
    return changed


def _decide(
    change: StatusChange,
    seen: set[str],
    current: dict[int, tuple[SubscriberStatus, bool]],
) -> bool:
    if change.external_id is not None and change.external_id in seen:
        return False
    found = current.get(change.subscriber_id)
    if found is None:
        raise SubscriberError(f"no subscriber with id {change.subscriber_id}")
    status, forgotten = found
    if status is change.status:
        return False
    if change.only_mailable and status.is_suppressed:
        return False
    if (
        change.only_stronger
        and status.is_suppressed
        and STRENGTH[change.status] <= STRENGTH[status]
    ):
        return False
    if forgotten and not change.status.is_suppressed:
        log.warning(
            "subscriber %d was forgotten and stays suppressed: %s not applied",
            change.subscriber_id,
            change.status,
        )
        return False
    return True


def _seen_external_ids(conn: sa.Connection, ids: set[str]) -> set[str]:
    seen: set[str] = set()
    for chunk in _chunks(sorted(ids), _IN_CHUNK):
        query = sa.select(subscriber_events.c.external_id).where(
            subscriber_events.c.external_id.in_(chunk)
        )
        seen.update(conn.scalars(query))
    return seen


def _current(conn: sa.Connection, ids: set[int]) -> dict[int, tuple[SubscriberStatus, bool]]:
    """``id → (status, forgotten)`` of these people."""
    found: dict[int, tuple[SubscriberStatus, bool]] = {}
    for chunk in _chunks(sorted(ids), _IN_CHUNK):
        query = sa.select(subscribers.c.id, subscribers.c.status, subscribers.c.forgotten_at).where(
            subscribers.c.id.in_(chunk)
        )
        for row in conn.execute(query):
            found[row.id] = (SubscriberStatus(row.status), row.forgotten_at is not None)
    return found
