"""Bulk writes for CSV imports: every address known, and many new rows in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.models import SubscriberStatus
from newsletter.store.schema import subscriber_events, subscribers
from newsletter.store.values import clean_name, subscribed_event
from newsletter.values.clock import now_utc


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
