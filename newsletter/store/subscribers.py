"""The managed subscriber list: who is on it, their consent record, and why anyone is suppressed.

Every status change goes through one place (``_change_status``) that records a
``subscriber_events`` row, so ``events()`` always explains a status. Addresses are unique
case-insensitively (``email_key``); every row also carries ``email_hash``, a one-way hash of
that key, which is all that remains after ``forget`` and keeps the address suppressed.
Pure helpers live in ``values``, the bulk writes of an import in ``bulk``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber, SubscriberStatus, TopicMode
from newsletter.store import bulk
from newsletter.store.bulk import StatusChange
from newsletter.store.schema import deliveries, subscriber_events, subscribers
from newsletter.store.values import (
    EVENT_KINDS,
    MAX_NAME_LENGTH,
    SOURCES,
    AlreadySubscribedError,
    SubscriberEvent,
    SubscriberRecord,
    canonical_topics,
    clean_name,
    email_hash,
    email_key,
    new_subscriber_values,
    normalise_email,
    subscribed_event,
    to_subscriber,
)
from newsletter.values.clock import as_utc, now_utc

__all__ = [
    "MAX_NAME_LENGTH",
    "SOURCES",
    "AlreadySubscribedError",
    "StatusChange",
    "SubscriberEvent",
    "SubscriberRecord",
    "SubscriberStore",
    "canonical_topics",
    "clean_name",
    "email_hash",
    "email_key",
    "new_subscriber_values",
    "normalise_email",
    "subscribed_event",
]


@dataclass(frozen=True)
class TopicStats:
    """Active readers per topic (most followed first), with any topics, and reading ``only``."""

    followers: tuple[tuple[str, int], ...]
    with_topics: int
    only: int


class SubscriberStore:
    """The subscriber list in a migrated database (see ``newsletter.store.engine.open_database``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # --- reading ---------------------------------------------------------------------------

    def get(self, email: str) -> Subscriber | None:
        """The subscriber with this address (any spelling of its case), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email_key == email_key(email))
            ).first()
        return to_subscriber(row) if row is not None else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with this id, or None (also None once forgotten)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(
                    subscribers.c.id == subscriber_id, subscribers.c.email.is_not(None)
                )
            ).first()
        return to_subscriber(row) if row is not None else None

    def record(self, email: str) -> SubscriberRecord | None:
        """The subscriber with the consent record (how, when, from where they joined)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email_key == email_key(email))
            ).first()
        if row is None:
            return None
        return SubscriberRecord(
            subscriber=to_subscriber(row),
            source=row.source,
            source_detail=row.source_detail,
            source_ip=row.source_ip,
            confirmed_ip=row.confirmed_ip,
            updated_at=as_utc(row.updated_at) or now_utc(),
        )

    def forgotten_at(self, email: str) -> datetime | None:
        """When this address was erased with ``forget``, or None if it never was."""
        with self.engine.connect() as conn:
            value = conn.scalar(
                sa.select(subscribers.c.forgotten_at).where(
                    subscribers.c.email_hash == email_hash(email)
                )
            )
        return as_utc(value)

    def is_suppressed(self, email: str) -> bool:
        """True when the address must never be mailed: unsubscribed, bounced, complained, forgotten."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers.c.status, subscribers.c.forgotten_at).where(
                    subscribers.c.email_hash == email_hash(email)
                )
            ).first()
        if row is None:
            return False
        return row.forgotten_at is not None or SubscriberStatus(row.status).is_suppressed

    def iter_active(self, batch_size: int = 1000, after_id: int = 0) -> Iterator[list[Subscriber]]:
        """Active subscribers in batches, by id (keyset pagination: constant memory, resumable)."""
        yield from self._batches(SubscriberStatus.ACTIVE, batch_size, after_id)

    def iter_all(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Every subscriber (forgotten ones have no address and are left out), by id."""
        for batch in self._batches(status, 1000, 0):
            yield from batch

    def _batches(
        self, status: SubscriberStatus | None, batch_size: int, after_id: int
    ) -> Iterator[list[Subscriber]]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        query = sa.select(subscribers).where(subscribers.c.email.is_not(None))
        if status is not None:
            query = query.where(subscribers.c.status == status.value)
        last = after_id
        while True:
            page = query.where(subscribers.c.id > last).order_by(subscribers.c.id)
            with self.engine.connect() as conn:
                batch = [to_subscriber(row) for row in conn.execute(page.limit(batch_size))]
            if not batch:
                return
            yield batch
            last = batch[-1].id

    def by_keys(self, keys: Collection[str]) -> dict[str, tuple[int, str, SubscriberStatus]]:
        """``email_key → (id, email, status)`` of the people with those keys: one query."""
        query = sa.select(
            subscribers.c.id, subscribers.c.email_key, subscribers.c.email, subscribers.c.status
        ).where(subscribers.c.email_key.in_(list(keys)))
        with self.engine.connect() as conn:
            return {
                row.email_key: (row.id, row.email, SubscriberStatus(row.status))
                for row in conn.execute(query)
            }

    def by_ids(self, ids: Collection[int]) -> dict[int, Subscriber]:
        """The people with these ids (forgotten ones left out), by id: one query a 500 ids."""
        rows = self._rows_where_in(subscribers.c.id, set(ids), subscribers.c.email.is_not(None))
        return {row.id: to_subscriber(row) for row in rows}

    def by_addresses(self, addresses: Collection[str]) -> dict[str, Subscriber]:
        """The people with these addresses, by ``email_key``: one query a 500 addresses."""
        keys = {email_key(address) for address in addresses}
        return {
            row.email_key: to_subscriber(row)
            for row in self._rows_where_in(subscribers.c.email_key, keys)
        }

    def _rows_where_in(
        self, column: sa.Column[Any], values: Collection[Any], *where: sa.ColumnElement[bool]
    ) -> list[sa.Row[Any]]:
        """Subscriber rows whose ``column`` is one of ``values``: one query a 500 values."""
        wanted = sorted(values)
        rows: list[sa.Row[Any]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                query = sa.select(subscribers).where(
                    column.in_(wanted[start : start + 500]), *where
                )
                rows.extend(conn.execute(query))
        return rows

    def count_active(self) -> int:
        with self.engine.connect() as conn:
            count = conn.scalar(
                sa.select(sa.func.count()).where(
                    subscribers.c.status == SubscriberStatus.ACTIVE.value
                )
            )
        return int(count or 0)

    def counts_by_status(self) -> dict[SubscriberStatus, int]:
        """How many people are in each status (every status present, zero when none)."""
        counts = dict.fromkeys(SubscriberStatus, 0)
        query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
        with self.engine.connect() as conn:
            for status, count in conn.execute(query):
                counts[SubscriberStatus(status)] = int(count)
        return counts

    def topic_stats(self) -> TopicStats:
        """How many active readers follow each topic, and how many read only their topics.

        One grouped query (by the stored topic list): the work in Python is per distinct
        choice of topics, not per reader.
        """
        query = (
            sa.select(subscribers.c.topics, subscribers.c.topic_mode, sa.func.count())
            .where(
                subscribers.c.status == SubscriberStatus.ACTIVE.value,
                subscribers.c.email.is_not(None),
            )
            .group_by(subscribers.c.topics, subscribers.c.topic_mode)
        )
        followers: dict[str, int] = {}
        with_topics = only = 0
        with self.engine.connect() as conn:
            for topics_json, mode, count in conn.execute(query):
                try:
                    chosen = [str(t) for t in json.loads(topics_json or "[]")]
                except ValueError:
                    chosen = []
                if not chosen:
                    continue
                with_topics += int(count)
                if mode == TopicMode.ONLY.value:
                    only += int(count)
                for topic in dict.fromkeys(chosen):
                    followers[topic] = followers.get(topic, 0) + int(count)
        ranked = sorted(followers.items(), key=lambda item: (-item[1], item[0]))
        return TopicStats(tuple(ranked), with_topics, only)

    def count_forgotten(self) -> int:
        with self.engine.connect() as conn:
            count = conn.scalar(
                sa.select(sa.func.count()).where(subscribers.c.forgotten_at.is_not(None))
            )
        return int(count or 0)

    def events(self, subscriber_id: int) -> list[SubscriberEvent]:
        """The history of a subscriber, oldest first."""
        query = (
            sa.select(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .order_by(subscriber_events.c.id)
        )
        with self.engine.connect() as conn:
            return [
                SubscriberEvent(
                    at=as_utc(row.at) or now_utc(),
                    kind=row.kind,
                    from_status=SubscriberStatus(row.from_status) if row.from_status else None,
                    to_status=SubscriberStatus(row.to_status) if row.to_status else None,
                    reason=row.reason,
                    source=row.source,
                    external_id=row.external_id,
                )
                for row in conn.execute(query)
            ]

    # --- changing ----------------------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        name: str | None = None,
        status: SubscriberStatus = SubscriberStatus.ACTIVE,
        source: str = "cli",
        source_detail: str | None = None,
        ip: str | None = None,
        topics: Sequence[str] = (),
        topic_mode: TopicMode = TopicMode.ALL,
    ) -> Subscriber:
        """Put a new person on the list; ``AlreadySubscribedError`` if the address is known."""
        address = normalise_email(email)
        if status.is_suppressed:
            raise SubscriberError(f"a new subscriber is pending or active, not {status}")
        values = new_subscriber_values(
            address,
            name=clean_name(name),
            status=status,
            source=source,
            source_detail=source_detail,
            ip=ip,
            topics=topics,
            at=now_utc(),
            topic_mode=topic_mode,
        )
        try:
            with self.engine.begin() as conn:
                self._refuse_known(conn, address)
                row = self._insert(conn, values)
        except sa.exc.IntegrityError as err:
            # Added by another process between our check and our insert (two form posts at once).
            with self.engine.connect() as conn:
                self._refuse_known(conn, address, by_key=True)
            raise SubscriberError(f"{address} could not be added: {err.orig}") from err
        return to_subscriber(row)

    def _insert(self, conn: sa.Connection, values: Mapping[str, Any]) -> sa.Row[Any]:
        subscriber_id = conn.execute(subscribers.insert().values(values)).inserted_primary_key
        assert subscriber_id is not None
        status = SubscriberStatus(values["status"])
        event = subscribed_event(
            subscriber_id[0],
            status,
            values["source"],
            values["source_detail"],
            values["updated_at"],
        )
        conn.execute(subscriber_events.insert().values(event))
        return conn.execute(
            sa.select(subscribers).where(subscribers.c.id == subscriber_id[0])
        ).one()

    def _refuse_known(self, conn: sa.Connection, address: str, by_key: bool = False) -> None:
        """Raise ``AlreadySubscribedError`` if the address (its hash, or its key) is known."""
        match = (
            subscribers.c.email_key == email_key(address)
            if by_key
            else subscribers.c.email_hash == email_hash(address)
        )
        row = conn.execute(
            sa.select(subscribers.c.status, subscribers.c.forgotten_at).where(match)
        ).first()
        if row is None:
            return
        status = SubscriberStatus(row.status)
        if row.forgotten_at is not None:
            raise AlreadySubscribedError(
                f"{address} asked to be forgotten and stays suppressed", status, forgotten=True
            )
        how = "suppressed: " + status.value if status.is_suppressed else status.value
        raise AlreadySubscribedError(f"{address} is on the list already ({how})", status)

    def set_status(
        self,
        subscriber_id: int,
        status: SubscriberStatus,
        *,
        reason: str,
        source: str,
        external_id: str | None = None,
    ) -> bool:
        """Change a status and record why; False (nothing changed) if already so or ``external_id`` seen."""
        try:
            with self.engine.begin() as conn:
                return self._change_status(
                    conn,
                    subscriber_id,
                    status,
                    reason=reason,
                    source=source,
                    external_id=external_id,
                )
        except sa.exc.IntegrityError:
            # Another process recorded the same external event between our check and insert.
            if external_id is not None and self._seen(external_id):
                return False
            raise

    def set_statuses(self, changes: Sequence[StatusChange]) -> list[bool]:
        """Many ``set_status`` in ONE transaction (one durable commit); for each, whether it changed.

        Each change is recorded with its reason, source and ``external_id`` like ``set_status``'s.
        Should another process record one of the same external events meanwhile, the batch is
        rolled back and applied one change at a time (each then sees the other's event).
        """
        if not changes:
            return []
        try:
            with self.engine.begin() as conn:
                return bulk.set_statuses(conn, changes)
        except sa.exc.IntegrityError:
            if not any(change.external_id for change in changes):
                raise
        return [self._one_of_many(change) for change in changes]

    def _one_of_many(self, change: StatusChange) -> bool:
        try:
            with self.engine.begin() as conn:
                return bulk.set_statuses(conn, [change])[0]
        except sa.exc.IntegrityError:
            if change.external_id is not None and self._seen(change.external_id):
                return False
            raise

    def _seen(self, external_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.scalar(
                sa.select(subscriber_events.c.id).where(
                    subscriber_events.c.external_id == external_id
                )
            )
        return found is not None

    def _change_status(
        self,
        conn: sa.Connection,
        subscriber_id: int,
        status: SubscriberStatus,
        *,
        reason: str,
        source: str,
        external_id: str | None,
        kind: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        if external_id is not None and conn.scalar(
            sa.select(subscriber_events.c.id).where(subscriber_events.c.external_id == external_id)
        ):
            return False
        row = conn.execute(
            sa.select(subscribers.c.status, subscribers.c.forgotten_at).where(
                subscribers.c.id == subscriber_id
            )
        ).first()
        if row is None:
            raise SubscriberError(f"no subscriber with id {subscriber_id}")
        current = SubscriberStatus(row.status)
        if current is status:
            return False
        if row.forgotten_at is not None and not status.is_suppressed:
            raise SubscriberError(f"subscriber {subscriber_id} was forgotten and stays suppressed")
        at = now_utc()
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id)
            .values(status=status.value, updated_at=at, **(extra or {}))
        )
        conn.execute(
            subscriber_events.insert().values(
                subscriber_id=subscriber_id,
                at=at,
                kind=kind or EVENT_KINDS[status],
                from_status=current.value,
                to_status=status.value,
                reason=reason,
                source=source,
                external_id=external_id,
            )
        )
        return True

    def confirm(self, subscriber_id: int, *, ip: str | None) -> bool:
        """Pending → active after the person clicked the confirmation link; False otherwise."""
        with self.engine.begin() as conn:
            current = conn.scalar(
                sa.select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            )
            if current != SubscriberStatus.PENDING.value:
                return False
            return self._change_status(
                conn,
                subscriber_id,
                SubscriberStatus.ACTIVE,
                reason="confirmed by the link in the confirmation email",
                source="web",
                external_id=None,
                kind="confirmed",
                extra={"confirmed_at": now_utc(), "confirmed_ip": ip},
            )

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        name: str | None,
        topics: Sequence[str],
        known_topics: Collection[str] | None = None,
        source: str = "web",
        topic_mode: TopicMode | None = None,
    ) -> Subscriber:
        """Set name, topics (checked against ``known_topics`` when given) and, when given, how
        the reader reads them (``topic_mode``); records an event."""
        topic_list = canonical_topics(topics, known_topics)
        values: dict[str, Any] = {
            "name": clean_name(name),
            "topics": json.dumps(topic_list),
            "updated_at": now_utc(),
        }
        if topic_mode is not None:
            values["topic_mode"] = topic_mode.value
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id, subscribers.c.email.is_not(None))
                .values(values)
            )
            if result.rowcount != 1:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            conn.execute(
                subscriber_events.insert().values(
                    subscriber_id=subscriber_id,
                    at=values["updated_at"],
                    kind="preferences",
                    reason="topics: "
                    + ("; ".join(topic_list) or "all")
                    + (f" ({topic_mode.value})" if topic_mode is not None else ""),
                    source=source,
                )
            )
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.id == subscriber_id)
            ).one()
        return to_subscriber(row)

    def _id_for(self, who: int | str) -> int:
        if isinstance(who, int):
            return who
        found = self.get(who)
        if found is None:
            raise SubscriberError(f"{who.strip()} is not on the list")
        return found.id

    def unsubscribe(self, who: int | str, *, reason: str, source: str) -> bool:
        """Unsubscribe by id or address; False if already suppressed. The record stays."""
        subscriber_id = self._id_for(who)
        with self.engine.begin() as conn:
            current = conn.scalar(
                sa.select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            )
            if current is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            if SubscriberStatus(current).is_suppressed:
                return False
            return self._change_status(
                conn,
                subscriber_id,
                SubscriberStatus.UNSUBSCRIBED,
                reason=reason,
                source=source,
                external_id=None,
            )

    def forget(self, email: str, *, source: str = "cli") -> bool:
        """Erase the person's data (right to erasure), keeping only the hash that suppresses them."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.status, subscribers.c.forgotten_at).where(
                    subscribers.c.email_hash == email_hash(email)
                )
            ).first()
            if row is None:
                raise SubscriberError(f"{email.strip()} is not on the list")
            if row.forgotten_at is not None:
                return False
            if not SubscriberStatus(row.status).is_suppressed:
                self._change_status(
                    conn,
                    row.id,
                    SubscriberStatus.UNSUBSCRIBED,
                    reason="asked to be forgotten",
                    source=source,
                    external_id=None,
                )
            self._erase(conn, row.id, source)
        return True

    def _erase(self, conn: sa.Connection, subscriber_id: int, source: str) -> None:
        at = now_utc()
        erased: dict[str, Any] = {
            "email": None,
            "email_key": None,
            "name": None,
            "topics": "[]",
            "source_detail": None,
            "source_ip": None,
            "confirmed_ip": None,
            "updated_at": at,
            "forgotten_at": at,
        }
        conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(erased))
        # The send ledger keeps who-got-what by id; the address itself goes.
        conn.execute(
            deliveries.update().where(deliveries.c.subscriber_id == subscriber_id).values(email="")
        )
        conn.execute(
            subscriber_events.insert().values(
                subscriber_id=subscriber_id,
                at=at,
                kind="forgotten",
                reason="personal data erased; a one-way hash keeps the address suppressed",
                source=source,
            )
        )

    # --- bulk work for imports (see ``bulk``) ---------------------------------------------------

    def known_addresses(self) -> dict[str, tuple[int, str | None, SubscriberStatus]]:
        """Every address on the list by its hash: (id, name, status); forgotten ones as unsubscribed."""
        return bulk.known_addresses(self.engine)

    def bulk_apply(
        self,
        new: Iterable[Mapping[str, Any]],
        renames: Iterable[tuple[int, str | None]],
        *,
        source: str,
        source_detail: str | None,
    ) -> int:
        """Insert new subscribers and rename others in ONE transaction; returns how many were new."""
        return bulk.bulk_apply(
            self.engine, new, renames, source=source, source_detail=source_detail
        )
