"""Helpers shared by the send tests: an issue, a populated list, and reading delivered mail."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.issues import load_topics, read_issue
from newsletter.models import Issue, Subscriber, SubscriberStatus
from newsletter.store.engine import open_database
from newsletter.store.schema import deliveries, sends, subscribers
from newsletter.store.subscribers import SubscriberStore, email_hash, email_key
from newsletter.tokens import Purpose, load_signer

TOKEN_RE = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]+)")
PREFERENCES_RE = re.compile(r"/preferences/([A-Za-z0-9_.-]+)")
MONTH = "2021-01"


def load_issue(settings: Settings, month: str = MONTH) -> Issue:
    return read_issue(settings.issues_dir / f"{month}.md", load_topics(settings.topics_file))


@dataclass
class Population:
    active: list[Subscriber]
    others: list[Subscriber]  # pending and unsubscribed people: never mailed

    @property
    def active_emails(self) -> set[str]:
        return {s.email for s in self.active}

    @property
    def all_emails(self) -> set[str]:
        return self.active_emails | {s.email for s in self.others}


def populate(settings: Settings, active: int, *, pending: int = 2, gone: int = 2) -> Population:
    """``active`` active subscribers plus a few pending and unsubscribed ones, interleaved."""
    store = SubscriberStore(open_database(settings.database_url))
    population = Population([], [])
    for number in range(active):
        population.active.append(store.add(f"reader{number}@example.com", name=f"Reader {number}"))
        if number < pending:
            population.others.append(
                store.add(f"waiting{number}@example.com", status=SubscriberStatus.PENDING)
            )
        if number < gone:
            person = store.add(f"gone{number}@example.com")
            store.unsubscribe(person.id, reason="test", source="cli")
            population.others.append(person)
    return population


def delivered_ids(transport: MemoryTransport) -> list[int]:
    return [r.subscriber_id for _, r in transport.delivered if r.subscriber_id is not None]


def ledger_rows(settings: Settings, month: str = MONTH) -> dict[str, str]:
    """email → status for the issue's send."""
    engine = open_database(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.email, deliveries.c.status)
            .join(sends, sends.c.id == deliveries.c.send_id)
            .where(sends.c.issue == month)
        ).all()
    return {str(e): str(s) for e, s in rows}


def send_row(settings: Settings, month: str = MONTH) -> dict[str, object] | None:
    engine = open_database(settings.database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(sends).where(sends.c.issue == month)).first()
    return dict(row._mapping) if row else None


def read_maildir(path: Path) -> list[EmailMessage]:
    """Every message in a Maildir's new/ and cur/."""
    messages = []
    for folder in ("new", "cur"):
        for file in sorted((path / folder).glob("*")):
            parsed = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            messages.append(parsed)
    return messages


def bodies(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative message; text must come first."""
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    return str(parts[0].get_content()), str(parts[1].get_content())


def check_personal_links(settings: Settings, subscriber_id: int, *texts: str) -> None:
    """Each text holds a valid unsubscribe and preferences token of exactly this subscriber."""
    signer = load_signer(settings)
    for text in texts:
        unsubscribe = set(TOKEN_RE.findall(text))
        preferences = set(PREFERENCES_RE.findall(text))
        assert unsubscribe, f"no unsubscribe link in {text[:200]!r}"
        for token in unsubscribe:
            assert signer.verify(Purpose.UNSUBSCRIBE, token) == subscriber_id
        for token in preferences:
            assert signer.verify(Purpose.PREFERENCES, token) == subscriber_id


def tokens_of(texts: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(TOKEN_RE.findall(text))
        found.update(PREFERENCES_RE.findall(text))
    return found


def seed(settings: Settings, count: int, *, inactive_every: int = 10) -> tuple[set[int], set[int]]:
    """Bulk-insert ``count`` people (every ``inactive_every``-th unsubscribed or pending) fast.

    Returns (active ids, inactive ids).
    """
    engine = open_database(settings.database_url)
    now = datetime.now(UTC)
    rows = []
    for number in range(1, count + 1):
        address = f"person{number}@example.com"
        if number % inactive_every == 0:
            status = SubscriberStatus.UNSUBSCRIBED if number % 20 == 0 else SubscriberStatus.PENDING
        else:
            status = SubscriberStatus.ACTIVE
        rows.append(
            {
                "email": address,
                "email_key": email_key(address),
                "email_hash": email_hash(address),
                "name": f"Person {number}",
                "status": status.value,
                "topics": "[]",
                "source": "import",
                "subscribed_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
        found = conn.execute(sa.select(subscribers.c.id, subscribers.c.status)).all()
    active = {int(i) for i, s in found if s == SubscriberStatus.ACTIVE.value}
    return active, {int(i) for i, _ in found} - active
