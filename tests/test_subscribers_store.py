"""The subscriber store on a real SQLite file and a real PostgreSQL database: statuses, events, consent, erasure, pagination."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.models import SubscriberStatus
from newsletter.store.engine import open_database
from newsletter.store.subscribers import (
    AlreadySubscribedError,
    SubscriberStore,
    email_hash,
    normalise_email,
)

ACTIVE = SubscriberStatus.ACTIVE
PENDING = SubscriberStatus.PENDING


@pytest.fixture
def store(database_url: str) -> SubscriberStore:
    """The store on each kind of database (SQLite file, PostgreSQL)."""
    return SubscriberStore(open_database(database_url))


def _dump(url: str) -> str:
    """Every value of every table, as text."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [
            repr(tuple(row))
            for table in sa.inspect(engine).get_table_names()
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        ]
    engine.dispose()
    return "\n".join(rows)


def test_normalise_email_trims_and_lowercases_only_the_domain() -> None:
    assert normalise_email("  Ann.Lee@Example.ORG \n") == "Ann.Lee@example.org"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("ann", "@-sign"), ("ann@localhost", "period"), ("a b@x.org", "SPACE")],
)
def test_normalise_email_rejects_bad_syntax_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(SubscriberError, match=reason):
        normalise_email(raw)


def test_add_records_consent_and_a_subscribed_event(store: SubscriberStore) -> None:
    person = store.add(
        "Ann@Example.org",
        name="  Ann \u00a0 Lee ",
        status=PENDING,
        source="web",
        source_detail="form",
        ip="203.0.113.9",
    )
    assert person.email == "Ann@example.org"
    assert person.name == "Ann Lee"  # spaces trimmed and collapsed
    assert person.status is PENDING
    assert person.subscribed_at is not None and person.subscribed_at.tzinfo is not None
    record = store.record("ann@example.org")
    assert record is not None and record.source == "web" and record.source_ip == "203.0.113.9"
    [event] = store.events(person.id)
    assert (event.kind, event.to_status, event.source) == ("subscribed", PENDING, "web")
    assert event.at.tzinfo is UTC


def test_email_is_unique_case_insensitively(store: SubscriberStore) -> None:
    store.add("ann@example.org")
    with pytest.raises(AlreadySubscribedError, match="already"):
        store.add("ANN@EXAMPLE.ORG")
    assert store.get("aNn@example.org") is not None
    assert store.counts_by_status()[ACTIVE] == 1


def test_set_status_records_reason_and_is_idempotent(store: SubscriberStore) -> None:
    person = store.add("ann@example.org")
    assert store.set_status(
        person.id,
        SubscriberStatus.BOUNCED,
        reason="550 no such user",
        source="webhook",
        external_id="evt-1",
    )
    # the same webhook event delivered again, even asking for another status: no change
    assert not store.set_status(
        person.id, ACTIVE, reason="replay", source="webhook", external_id="evt-1"
    )
    assert not store.set_status(person.id, SubscriberStatus.BOUNCED, reason="x", source="sync")
    found = store.get_by_id(person.id)
    assert found is not None and found.status is SubscriberStatus.BOUNCED
    kinds = [(e.kind, e.from_status, e.to_status, e.reason) for e in store.events(person.id)]
    assert kinds[-1] == ("bounced", ACTIVE, SubscriberStatus.BOUNCED, "550 no such user")
    assert len(kinds) == 2


def test_set_status_of_unknown_id_is_an_error(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="no subscriber"):
        store.set_status(999, ACTIVE, reason="x", source="cli")


def test_confirm_activates_pending_once(store: SubscriberStore) -> None:
    person = store.add("ann@example.org", status=PENDING, source="web")
    assert store.confirm(person.id, ip="198.51.100.4")
    assert not store.confirm(person.id, ip="198.51.100.4")
    found = store.get_by_id(person.id)
    assert found is not None and found.status is ACTIVE and found.confirmed_at is not None
    record = store.record("ann@example.org")
    assert record is not None and record.confirmed_ip == "198.51.100.4"
    assert store.events(person.id)[-1].kind == "confirmed"


def test_confirm_never_reactivates_an_unsubscribed_person(store: SubscriberStore) -> None:
    person = store.add("ann@example.org", status=PENDING, source="web")
    store.unsubscribe(person.id, reason="changed mind", source="web")
    assert not store.confirm(person.id, ip=None)
    assert store.is_suppressed("ann@example.org")


def test_update_preferences_sets_topics_and_name(store: SubscriberStore) -> None:
    person = store.add("ann@example.org")
    known = ["Depression and Depressive Symptoms", "Attendance, Attrition, and Drop-Out"]
    updated = store.update_preferences(
        person.id,
        name="Ann L.",
        topics=["attendance, attrition, and drop-out", "Attendance, Attrition, and Drop-Out"],
        known_topics=known,
    )
    assert updated.topics == ("Attendance, Attrition, and Drop-Out",)
    assert updated.name == "Ann L."
    with pytest.raises(SubscriberError, match="unknown topic"):
        store.update_preferences(person.id, name=None, topics=["Astrology"], known_topics=known)
    assert store.events(person.id)[-1].kind == "preferences"


def test_unsubscribe_keeps_the_record_and_suppresses(store: SubscriberStore) -> None:
    store.add("ann@example.org")
    assert store.unsubscribe("ANN@example.org", reason="asked by email", source="cli")
    assert not store.unsubscribe("ann@example.org", reason="again", source="cli")
    assert store.is_suppressed("ann@example.org")
    with pytest.raises(AlreadySubscribedError, match="suppressed: unsubscribed"):
        store.add("ann@example.org")
    with pytest.raises(SubscriberError, match="not on the list"):
        store.unsubscribe("nobody@example.org", reason="x", source="cli")


def test_forget_erases_personal_data_but_stays_suppressed(
    store: SubscriberStore, database_url: str
) -> None:
    person = store.add("Ann@Example.org", name="Ann Lee", ip="203.0.113.9")
    assert store.forget("ann@example.org")
    assert not store.forget("ANN@example.org")
    assert store.get("ann@example.org") is None and store.get_by_id(person.id) is None
    assert store.is_suppressed("ANN@EXAMPLE.ORG")
    with pytest.raises(AlreadySubscribedError) as refused:
        store.add("ann@example.org", source="web")
    assert refused.value.forgotten
    dump = _dump(database_url)
    assert "Ann Lee" not in dump and "ann@example.org" not in dump.lower()
    assert "203.0.113.9" not in dump
    assert email_hash("ann@example.org") in dump
    assert [e.kind for e in store.events(person.id)][-2:] == ["unsubscribed", "forgotten"]


def test_iter_active_pages_by_id_and_resumes(store: SubscriberStore) -> None:
    ids = [store.add(f"p{n}@example.org").id for n in range(25)]
    store.unsubscribe(ids[3], reason="x", source="cli")
    store.add("late@example.org", status=PENDING)
    batches = list(store.iter_active(batch_size=10))
    assert [len(batch) for batch in batches] == [10, 10, 4]
    seen = [person.id for batch in batches for person in batch]
    assert seen == [i for i in ids if i != ids[3]]
    resumed = [p.id for batch in store.iter_active(batch_size=10, after_id=ids[19]) for p in batch]
    assert resumed == ids[20:]
    assert store.count_active() == 24


def test_counts_and_iter_all(store: SubscriberStore) -> None:
    store.add("a@example.org")
    store.add("b@example.org", status=PENDING)
    c = store.add("c@example.org")
    store.set_status(c.id, SubscriberStatus.COMPLAINED, reason="spam report", source="webhook")
    store.forget("a@example.org")
    counts = store.counts_by_status()
    assert counts[SubscriberStatus.UNSUBSCRIBED] == 1 and counts[PENDING] == 1
    assert counts[SubscriberStatus.COMPLAINED] == 1 and counts[ACTIVE] == 0
    assert [p.email for p in store.iter_all()] == ["b@example.org", "c@example.org"]
    assert [p.email for p in store.iter_all(PENDING)] == ["b@example.org"]
    assert store.count_forgotten() == 1


def test_timestamps_are_utc_after_reopening(database_url: str, store: SubscriberStore) -> None:
    before = datetime.now(UTC)
    store.add("ann@example.org")
    reopened = SubscriberStore(open_database(database_url))
    person = reopened.get("ann@example.org")
    assert person is not None and person.subscribed_at is not None
    assert person.subscribed_at.tzinfo is UTC and person.subscribed_at >= before


def test_a_concurrent_insert_of_the_same_address_is_reported_as_already_subscribed(
    store: SubscriberStore, database_url: str
) -> None:
    # Another process's row that our hash check cannot see (as if it committed just after it):
    # the unique email_key makes our insert fail, and that becomes the ordinary refusal.
    with sa.create_engine(database_url).begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO subscribers (email, email_key, email_hash, status, topics, source,"
            " subscribed_at, updated_at) VALUES ('ann@example.org', 'ann@example.org', 'other',"
            " 'pending', '[]', 'web', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    with pytest.raises(AlreadySubscribedError, match=r"already \(pending\)"):
        store.add("Ann@example.org")
    assert [p.email for p in store.iter_all()] == ["ann@example.org"]


def test_a_huge_invalid_address_is_shortened_in_the_message() -> None:
    with pytest.raises(SubscriberError) as refused:
        normalise_email("x" * 5000 + "@example.org")
    assert len(str(refused.value)) < 300
