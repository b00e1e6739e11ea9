"""Values of the subscriber list: address normalisation and hashing, names, topics, new rows, events.

Pure functions with no database access, shared by the store, the CSV import and the web app.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.errors import InvalidNameError, SubscriberError
from newsletter.issues.common import hint
from newsletter.models import Subscriber, SubscriberStatus, TopicMode
from newsletter.names import MAX_NAME_LENGTH as MAX_NAME_LENGTH  # re-exported for the store
from newsletter.names import character_problem, name_problem
from newsletter.values.address import AddressError, normalise_address
from newsletter.values.clock import as_utc

SOURCES = ("cli", "import", "web")
_HASH_PREFIX = b"newsletter subscriber address v1:"  # domain separation for the one-way hash


class AlreadySubscribedError(SubscriberError):
    """The address is on the list already (``status`` says how)."""

    def __init__(self, message: str, status: SubscriberStatus, forgotten: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.forgotten = forgotten


@dataclass(frozen=True, kw_only=True)
class SubscriberEvent:
    """One recorded change of a subscriber: a status change, a confirmation, new preferences …"""

    at: datetime
    kind: str
    from_status: SubscriberStatus | None
    to_status: SubscriberStatus | None
    reason: str
    source: str
    external_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriberRecord:
    """Everything stored about one subscriber, consent record included (for ``show``)."""

    subscriber: Subscriber
    source: str
    source_detail: str | None
    source_ip: str | None
    confirmed_ip: str | None
    updated_at: datetime


def normalise_email(raw: str) -> str:
    """``normalise_address`` for the list: trimmed, checked, domain lower-cased; else SubscriberError."""
    try:
        return normalise_address(raw)
    except AddressError as err:
        raise SubscriberError(str(err)) from err


def email_key(email: str) -> str:
    """The case-insensitive identity of an address: what makes two spellings the same person."""
    return unicodedata.normalize("NFC", email.strip()).casefold()


def email_hash(email: str) -> str:
    """A one-way hash of the address (SHA-256 of its key) that outlives erasure."""
    return hashlib.sha256(_HASH_PREFIX + email_key(email).encode("utf-8")).hexdigest()


def clean_name(raw: str | None) -> str | None:
    """The name with spaces trimmed and collapsed, or None when blank; ``InvalidNameError`` else.

    Refused rather than repaired: a control character in a name is a mistake the person should see.
    """
    if raw is None:
        return None
    problem = character_problem(raw)  # before split(), which would eat tabs and line breaks
    if problem is None:
        name = " ".join(raw.split())
        problem = name_problem(name)  # the length, once runs of spaces are one
        if problem is None:
            return name or None
    raise InvalidNameError(problem)


def to_subscriber(row: sa.Row[Any]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=SubscriberStatus(row.status),
        topics=tuple(json.loads(row.topics or "[]")),
        subscribed_at=as_utc(row.subscribed_at),
        confirmed_at=as_utc(row.confirmed_at),
        topic_mode=TopicMode(row.topic_mode or TopicMode.ALL),
    )


EVENT_KINDS = {
    SubscriberStatus.PENDING: "pending",
    SubscriberStatus.ACTIVE: "activated",
    SubscriberStatus.UNSUBSCRIBED: "unsubscribed",
    SubscriberStatus.BOUNCED: "bounced",
    SubscriberStatus.COMPLAINED: "complained",
}


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
                raise SubscriberError(f"unknown topic {topic!r}{hint(topic, list(known or ()))}")
            topic = by_key[topic.casefold()]
        if topic not in result:
            result.append(topic)
    return result


def parse_topic_mode(raw: str | None) -> TopicMode:
    """``all`` (also when blank) or ``only``, any case; ``SubscriberError`` otherwise."""
    value = (raw or "").strip().lower() or TopicMode.ALL.value
    try:
        return TopicMode(value)
    except ValueError:
        raise SubscriberError(f"topic_mode {raw!r}: expected all or only") from None


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
    topic_mode: TopicMode = TopicMode.ALL,
) -> dict[str, Any]:
    """The column values of a new ``subscribers`` row for a normalised address."""
    if source not in SOURCES:
        raise SubscriberError(f"unknown source {source!r} (expected one of {', '.join(SOURCES)})")
    return {
        "email": address,
        "email_key": email_key(address),
        "email_hash": email_hash(address),
        "name": clean_name(name),  # every new row passes the one name rule
        "status": status.value,
        "topics": json.dumps(canonical_topics(topics, None)),
        "topic_mode": topic_mode.value,
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
