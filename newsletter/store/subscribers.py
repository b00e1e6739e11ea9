"""The managed subscriber list: who is on it, their consent record, and why anyone is suppressed.

Every status change goes through one place (``_change_status``) that records a
``subscriber_events`` row, so ``events()`` always explains a status. Addresses are unique
case-insensitively (``email_key``); every row also carries ``email_hash``, a one-way hash of
that key, which is all that remains after ``forget`` and keeps the address suppressed.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.store.schema import deliveries, subscriber_events, subscribers

MAX_NAME_LENGTH = 200
SOURCES = ("cli", "import", "web")
_HASH_PREFIX = b"newsletter subscriber address v1:"  # domain separation for the one-way hash
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class AlreadySubscribedError(SubscriberError):
    """The address is on the list already (``status`` says how)."""

    def __init__(self, message: str, status: SubscriberStatus, forgotten: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.forgotten = forgotten


@dataclass(frozen=True)
class SubscriberEvent:
    """One recorded change of a subscriber: a status change, a confirmation, new preferences …"""

    at: datetime
    kind: str
    from_status: SubscriberStatus | None
    to_status: SubscriberStatus | None
    reason: str
    source: str
    external_id: str | None = None


@dataclass(frozen=True)
class SubscriberRecord:
    """Everything stored about one subscriber, consent record included (for ``show``)."""

    subscriber: Subscriber
    source: str
    source_detail: str | None
    source_ip: str | None
    confirmed_ip: str | None
    updated_at: datetime


def normalise_email(raw: str) -> str:
    """Trim and validate an address (syntax only, no network); the domain comes back lower-cased."""
    text = (raw or "").strip()
    if not text:
        raise SubscriberError("the email address is empty")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise SubscriberError(f"{text!r} is not a valid email address: {err}") from err


def email_key(email: str) -> str:
    """The case-insensitive identity of an address: what makes two spellings the same person."""
    return unicodedata.normalize("NFC", email.strip()).casefold()


def email_hash(email: str) -> str:
    """A one-way hash of the address (SHA-256 of its key) that outlives erasure."""
    return hashlib.sha256(_HASH_PREFIX + email_key(email).encode("utf-8")).hexdigest()


def clean_name(raw: str | None) -> str | None:
    """A display name on one line (it ends up in a To: header), or None when blank."""
    if raw is None:
        return None
    name = " ".join(_CONTROL_RE.sub(" ", raw).split())
    if len(name) > MAX_NAME_LENGTH:
        raise SubscriberError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return name or None


def utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


def _to_subscriber(row: sa.Row[Any]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=SubscriberStatus(row.status),
        topics=tuple(json.loads(row.topics or "[]")),
        subscribed_at=utc(row.subscribed_at),
        confirmed_at=utc(row.confirmed_at),
    )


_EVENT_KINDS = {
    SubscriberStatus.PENDING: "pending",
    SubscriberStatus.ACTIVE: "activated",
    SubscriberStatus.UNSUBSCRIBED: "unsubscribed",
    SubscriberStatus.BOUNCED: "bounced",
    SubscriberStatus.COMPLAINED: "complained",
}


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
        return _to_subscriber(row) if row is not None else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with this id, or None (also None once forgotten)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(
                    subscribers.c.id == subscriber_id, subscribers.c.email.is_not(None)
                )
            ).first()
        return _to_subscriber(row) if row is not None else None

    def record(self, email: str) -> SubscriberRecord | None:
        """The subscriber with the consent record (how, when, from where they joined)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email_key == email_key(email))
            ).first()
        if row is None:
            return None
        return SubscriberRecord(
            subscriber=_to_subscriber(row),
            source=row.source,
            source_detail=row.source_detail,
            source_ip=row.source_ip,
            confirmed_ip=row.confirmed_ip,
            updated_at=utc(row.updated_at) or now_utc(),
        )

    def forgotten_at(self, email: str) -> datetime | None:
        """When this address was erased with ``forget``, or None if it never was."""
        with self.engine.connect() as conn:
            value = conn.scalar(
                sa.select(subscribers.c.forgotten_at).where(
                    subscribers.c.email_hash == email_hash(email)
                )
            )
        return utc(value)

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
                batch = [_to_subscriber(row) for row in conn.execute(page.limit(batch_size))]
            if not batch:
                return
            yield batch
            last = batch[-1].id

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
                    at=utc(row.at) or now_utc(),
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
        )
        with self.engine.begin() as conn:
            self._refuse_known(conn, address)
            subscriber_id = conn.execute(subscribers.insert().values(values)).inserted_primary_key
            assert subscriber_id is not None
            conn.execute(
                subscriber_events.insert().values(
                    subscribed_event(
                        subscriber_id[0], status, source, source_detail, values["subscribed_at"]
                    )
                )
            )
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.id == subscriber_id[0])
            ).one()
        return _to_subscriber(row)

    def _refuse_known(self, conn: sa.Connection, address: str) -> None:
        row = conn.execute(
            sa.select(subscribers.c.status, subscribers.c.forgotten_at).where(
                subscribers.c.email_hash == email_hash(address)
            )
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
                kind=kind or _EVENT_KINDS[status],
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
    ) -> Subscriber:
        """Set name and topics (checked against ``known_topics`` when given); records an event."""
        topic_list = canonical_topics(topics, known_topics)
        values = {
            "name": clean_name(name),
            "topics": json.dumps(topic_list),
            "updated_at": now_utc(),
        }
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
                    reason="topics: " + ("; ".join(topic_list) or "all"),
                    source="web",
                )
            )
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.id == subscriber_id)
            ).one()
        return _to_subscriber(row)

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

    # --- bulk work for imports -----------------------------------------------------------------

    def known_addresses(self) -> dict[str, tuple[int, str | None, SubscriberStatus]]:
        """Every address on the list by its hash: (id, name, status); forgotten ones as unsubscribed."""
        query = sa.select(
            subscribers.c.email_hash,
            subscribers.c.id,
            subscribers.c.name,
            subscribers.c.status,
            subscribers.c.forgotten_at,
        )
        known: dict[str, tuple[int, str | None, SubscriberStatus]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                status = SubscriberStatus(row.status)
                if row.forgotten_at is not None and not status.is_suppressed:
                    status = SubscriberStatus.UNSUBSCRIBED
                known[row.email_hash] = (row.id, row.name, status)
        return known

    def bulk_apply(
        self,
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
        with self.engine.begin() as conn:
            before = conn.scalar(sa.select(sa.func.max(subscribers.c.id))) or 0
            for chunk in _chunks(new, chunk_size):
                conn.execute(subscribers.insert(), [{**row, "updated_at": at} for row in chunk])
                inserted += len(chunk)
            if inserted:
                conn.execute(_subscribed_events_since(before, at, source, source_detail, how))
            self._rename(conn, renames, at, source, source_detail)
        return inserted

    def _rename(
        self,
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
                [{"sid": sid, "new_name": name} for sid, name in chunk],
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


def canonical_topics(topics: Iterable[str], known: Collection[str] | None) -> list[str]:
    """Topics without blanks or repeats, spelled as in ``known`` (matched case-insensitively)."""
    by_key = {topic.casefold(): topic for topic in known} if known is not None else None
    result: list[str] = []
    for raw in topics:
        topic = " ".join(str(raw).split())
        if not topic:
            continue
        if by_key is not None:
            if topic.casefold() not in by_key:
                raise SubscriberError(f"unknown topic {topic!r}")
            topic = by_key[topic.casefold()]
        if topic not in result:
            result.append(topic)
    return result


def new_subscriber_values(
    address: str,
    *,
    name: str | None,
    status: SubscriberStatus,
    source: str,
    source_detail: str | None,
    ip: str | None,
    topics: Sequence[str],
    at: datetime,
) -> dict[str, Any]:
    """The column values of a new ``subscribers`` row for a normalised address."""
    if source not in SOURCES:
        raise SubscriberError(f"unknown source {source!r} (expected one of {', '.join(SOURCES)})")
    return {
        "email": address,
        "email_key": email_key(address),
        "email_hash": email_hash(address),
        "name": name,
        "status": status.value,
        "topics": json.dumps(canonical_topics(topics, None)),
        "source": source,
        "source_detail": source_detail[:500] if source_detail else None,
        "source_ip": ip,
        "subscribed_at": at,
        "updated_at": at,
    }


def subscribed_event(
    subscriber_id: int,
    status: SubscriberStatus,
    source: str,
    source_detail: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The ``subscriber_events`` row that records how a person joined."""
    how = {"cli": "added on the command line", "import": "imported", "web": "signed up on the web"}
    reason = how.get(source, source) + (f" from {source_detail}" if source_detail else "")
    return {
        "subscriber_id": subscriber_id,
        "at": at,
        "kind": "subscribed",
        "from_status": None,
        "to_status": status.value,
        "reason": reason[:500],
        "source": source,
    }
