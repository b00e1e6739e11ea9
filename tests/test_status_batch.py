"""Many status changes in one transaction (``SubscriberStore.set_statuses``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.models import SubscriberStatus
from newsletter.store import bulk
from newsletter.store.engine import open_database
from newsletter.store.subscribers import StatusChange, SubscriberStore, new_subscriber_values

ACTIVE = SubscriberStatus.ACTIVE
BOUNCED = SubscriberStatus.BOUNCED
COMPLAINED = SubscriberStatus.COMPLAINED
UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED


@pytest.fixture
def store(database_url: str) -> SubscriberStore:
    return SubscriberStore(open_database(database_url))


def _commits(store: SubscriberStore) -> list[int]:
    counted = [0]

    def count(_conn: Any) -> None:
        counted[0] += 1

    sa.event.listen(store.engine, "commit", count)
    return counted


def test_a_batch_is_one_commit_and_records_every_change(store: SubscriberStore) -> None:
    people = [store.add(f"p{n}@example.org") for n in range(5)]
    commits = _commits(store)
    changes = [
        StatusChange(p.id, BOUNCED, reason=f"550 #{n}", source="sync", external_id=f"x:{n}")
        for n, p in enumerate(people)
    ]
    assert store.set_statuses(changes) == [True] * 5
    assert commits[0] == 1
    for n, person in enumerate(people):
        assert store.get_by_id(person.id).status is BOUNCED  # type: ignore[union-attr]
        last = store.events(person.id)[-1]
        assert (last.kind, last.reason, last.source, last.external_id) == (
            "bounced",
            f"550 #{n}",
            "sync",
            f"x:{n}",
        )
        assert (last.from_status, last.to_status) == (ACTIVE, BOUNCED)


def test_external_ids_apply_once_across_and_within_batches(store: SubscriberStore) -> None:
    a, b = store.add("a@example.org"), store.add("b@example.org")
    first = StatusChange(a.id, BOUNCED, reason="r", source="webhook", external_id="e1")
    assert store.set_statuses([first]) == [True]
    store.set_status(a.id, ACTIVE, reason="fixed", source="cli")
    again = StatusChange(b.id, BOUNCED, reason="r", source="webhook", external_id="e2")
    twice = StatusChange(b.id, COMPLAINED, reason="r", source="webhook", external_id="e2")
    assert store.set_statuses([first, again, twice]) == [False, True, False]
    assert store.get_by_id(a.id).status is ACTIVE  # type: ignore[union-attr]
    assert store.get_by_id(b.id).status is BOUNCED  # type: ignore[union-attr]
    assert store.set_statuses([]) == []


def test_changes_of_one_person_apply_in_order(store: SubscriberStore) -> None:
    a = store.add("a@example.org")
    changes = [
        StatusChange(a.id, UNSUBSCRIBED, reason="1", source="webhook", only_stronger=True),
        StatusChange(a.id, COMPLAINED, reason="2", source="webhook", only_stronger=True),
        StatusChange(a.id, BOUNCED, reason="3", source="webhook", only_stronger=True),
        StatusChange(a.id, COMPLAINED, reason="4", source="webhook", only_stronger=True),
    ]
    assert store.set_statuses(changes) == [True, True, False, False]
    events = store.events(a.id)
    assert [(e.from_status, e.to_status) for e in events[1:]] == [
        (ACTIVE, UNSUBSCRIBED),
        (UNSUBSCRIBED, COMPLAINED),
    ]


def test_only_mailable_leaves_a_suppression_alone(store: SubscriberStore) -> None:
    a, b = store.add("a@example.org"), store.add("b@example.org")
    store.unsubscribe(a.id, reason="asked", source="web")
    changes = [
        StatusChange(a.id, BOUNCED, reason="r", source="sync", only_mailable=True),
        StatusChange(b.id, BOUNCED, reason="r", source="sync", only_mailable=True),
        StatusChange(b.id, COMPLAINED, reason="r", source="sync", only_mailable=True),
    ]
    assert store.set_statuses(changes) == [False, True, False]
    assert store.get_by_id(a.id).status is UNSUBSCRIBED  # type: ignore[union-attr]


def test_a_forgotten_person_is_never_made_mailable(store: SubscriberStore) -> None:
    a = store.add("a@example.org")
    store.forget("a@example.org")
    assert store.set_statuses([StatusChange(a.id, ACTIVE, reason="r", source="cli")]) == [False]
    assert store.is_suppressed("a@example.org")
    assert store.set_statuses([StatusChange(a.id, BOUNCED, reason="r", source="sync")]) == [True]


def test_an_unknown_id_fails_the_batch_and_writes_nothing(store: SubscriberStore) -> None:
    a = store.add("a@example.org")
    changes = [
        StatusChange(a.id, BOUNCED, reason="r", source="sync"),
        StatusChange(a.id + 999, BOUNCED, reason="r", source="sync"),
    ]
    with pytest.raises(SubscriberError, match="no subscriber"):
        store.set_statuses(changes)
    assert store.get_by_id(a.id).status is ACTIVE  # type: ignore[union-attr]


def test_a_race_on_an_external_id_falls_back_to_one_change_at_a_time(
    store: SubscriberStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process records the same event between our read and our insert."""
    a, b = store.add("a@example.org"), store.add("b@example.org")
    assert store.set_status(a.id, BOUNCED, reason="r", source="webhook", external_id="dup")
    store.set_status(a.id, ACTIVE, reason="fixed", source="cli")
    real = bulk._seen_external_ids
    calls = [0]

    def blind_once(conn: sa.Connection, ids: set[str]) -> set[str]:
        calls[0] += 1
        return set() if calls[0] == 1 else real(conn, ids)

    monkeypatch.setattr(bulk, "_seen_external_ids", blind_once)
    changes = [
        StatusChange(b.id, BOUNCED, reason="r", source="webhook", external_id="new"),
        StatusChange(a.id, COMPLAINED, reason="r", source="webhook", external_id="dup"),
    ]
    assert store.set_statuses(changes) == [True, False]
    assert store.get_by_id(a.id).status is ACTIVE  # type: ignore[union-attr]
    assert store.get_by_id(b.id).status is BOUNCED  # type: ignore[union-attr]
    assert [e.external_id for e in store.events(b.id)].count("new") == 1


def test_many_changes_cross_the_in_chunk(store: SubscriberStore) -> None:
    """More ids than one IN (…) takes: read in chunks, still one commit."""
    at = datetime.now(UTC)
    rows = [
        new_subscriber_values(
            f"p{n}@example.org",
            name=None,
            status=ACTIVE,
            source="import",
            source_detail=None,
            ip=None,
            topics=(),
            at=at,
        )
        for n in range(bulk._IN_CHUNK + 20)
    ]
    store.bulk_apply(rows, (), source="import", source_detail=None)
    ids = [person.id for person in store.iter_all()]
    assert len(ids) == len(rows)
    commits = _commits(store)
    changes = [
        StatusChange(i, UNSUBSCRIBED, reason="r", source="sync", external_id=f"c{i}") for i in ids
    ]
    assert all(store.set_statuses(changes))
    assert commits[0] == 1
    assert store.counts_by_status()[UNSUBSCRIBED] == len(ids)
    assert len(store.events(ids[-1])) == 2  # subscribed, unsubscribed


def test_one_webhook_post_applies_in_order_and_never_weakens(database_url: str) -> None:
    """Several events about one reader in one post; replays, strangers and forgotten readers."""
    from newsletter.delivery.hooks import InboundEvent
    from newsletter.store.database import Database
    from newsletter.web.events import apply_events

    with Database.open(database_url) as database:
        store = database.subscribers
        a, b, c = (store.add(f"{n}@example.org") for n in "abc")
        store.forget("c@example.org")
        commits = _commits(store)
        post = [
            InboundEvent("a@example.org", a.id, UNSUBSCRIBED, "unsubscribed", "sg:1"),
            InboundEvent("A@Example.org", None, COMPLAINED, "spam", "sg:2"),
            InboundEvent("a@example.org", a.id, BOUNCED, "550", "sg:3"),  # weaker: no change
            InboundEvent("b@example.org", a.id, BOUNCED, "550", "sg:4"),  # id of a, address of b
            InboundEvent("c@example.org", c.id, BOUNCED, "550", "sg:5"),  # forgotten: unmatched
            InboundEvent("nobody@example.org", None, BOUNCED, "550", "sg:6"),
            None,
        ]
        first = apply_events(database, post)
        assert commits[0] == 1  # the status changes; no ledger rows to touch
        assert first.as_dict() == {
            "received": 7,
            "status_changes": 3,
            "ledger_changes": 0,
            "unchanged": 1,
            "unmatched": 2,
            "ignored": 1,
        }
        assert store.get_by_id(a.id).status is COMPLAINED  # type: ignore[union-attr]
        assert store.get_by_id(b.id).status is BOUNCED  # type: ignore[union-attr]
        assert [e.external_id for e in store.events(a.id)[1:]] == ["sg:1", "sg:2"]
        again = apply_events(database, post)
        assert again.status_changes == 0
        assert again.unchanged == 4
