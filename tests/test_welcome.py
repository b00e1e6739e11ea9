"""The welcome issue: the latest completed issue, in the reader's variant, exactly once."""

from __future__ import annotations

import dataclasses
import socket
import subprocess

import httpx
import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import TemporaryDeliveryError
from newsletter.mime import build_message
from newsletter.models import TopicMode
from newsletter.send import send_issue, send_report
from newsletter.store import welcome as store_welcome
from newsletter.store.lease import Owner
from newsletter.store.ledger import MessageIds, SendStatus
from newsletter.store.schema import deliveries, sends
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import load_signer
from newsletter.welcome import Welcome, send_welcome
from tests.dbkit import db
from tests.sendkit import bodies
from tests.variantkit import VARIANT_MONTH, Reader, add_readers, check_body, write_issue
from tests.webkit import confirm, confirm_path, serving, subscribe, wait_for

pytest_plugins = ["tests.webfixtures"]


def sent_issue(settings: Settings) -> None:
    """The variant issue sent to the usual readers (the send completed)."""
    add_readers(settings)
    summary = send_issue(settings, db(settings), write_issue(settings), transport=MemoryTransport())
    assert summary.status == "completed"


def row_of(settings: Settings, email: str, month: str = VARIANT_MONTH) -> tuple[str, str | None]:
    with db(settings).engine.connect() as conn:
        found = conn.execute(
            sa.select(deliveries.c.status, deliveries.c.variant)
            .join(sends, sends.c.id == deliveries.c.send_id)
            .where(sends.c.issue == month, deliveries.c.email == email)
        ).all()
    assert len(found) <= 1
    return (str(found[0][0]), found[0][1]) if found else ("none", None)


def welcome(settings: Settings, email: str, transport: MemoryTransport) -> Welcome:
    person = SubscriberStore(db(settings).engine).get(email)
    assert person is not None
    return send_welcome(
        settings,
        db(settings),
        person.id,
        transport=lambda: transport,
        signer=load_signer(settings),
    )


def test_confirming_on_the_web_brings_the_latest_issue_in_the_readers_variant_once(
    settings: Settings,
) -> None:
    sent_issue(settings)
    transport = MemoryTransport()
    with (
        serving(settings, transport=lambda: transport) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        subscribe(http, "new@example.com", "New Reader")
        wait_for(lambda: transport.delivered)
        store = SubscriberStore(db(settings).engine)
        person = store.get("new@example.com")
        assert person is not None
        store.update_preferences(
            person.id, name=None, topics=["Therapist Factors"], topic_mode=TopicMode.ONLY
        )
        message, recipient = transport.delivered[0]
        answer = confirm(http, confirm_path(build_message(message, recipient)))
        assert answer.status_code == 200 and "You are subscribed" in answer.text
    assert len(transport.delivered) == 2
    message, recipient = transport.delivered[1]
    assert recipient.email == "new@example.com" and recipient.subscriber_id == person.id
    assert message.subject.startswith("Welcome to PPRNet Monthly: ")
    text, html = bodies(build_message(message, recipient))
    check_body(Reader("new@example.com", (), TopicMode.ONLY, (3,), ()), text, html)
    assert row_of(settings, "new@example.com") == ("sent", "3")

    # A resume of that issue, even resending unconfirmed rows, never sends it to them again.
    again = MemoryTransport()
    for extra in ({}, {"resend_unconfirmed": True}):
        send_issue(
            settings,
            db(settings),
            write_issue(settings),
            transport=again,
            resume=True,
            **extra,  # type: ignore[arg-type]
        )
    assert again.delivered == []
    assert send_report(db(settings), VARIANT_MONTH).variants[-1] == ("3", 1)
    # Nor does a second welcome.
    assert welcome(settings, "new@example.com", again) is Welcome.ALREADY
    assert again.delivered == []


def test_no_welcome_while_a_run_holds_the_issue_then_one_after(settings: Settings) -> None:
    sent_issue(settings)
    SubscriberStore(db(settings).engine).add("late@example.com", topics=["Attachment"])
    ledger = db(settings).ledger()
    record = ledger.find(VARIANT_MONTH)
    assert record is not None
    ledger.acquire(record, "memory")  # a live run (this process) holds the lease
    transport = MemoryTransport()
    assert welcome(settings, "late@example.com", transport) is Welcome.LEFT_TO_SEND
    assert transport.delivered == [] and row_of(settings, "late@example.com") == ("none", None)
    ledger.finish(record.id, SendStatus.COMPLETED)
    assert welcome(settings, "late@example.com", transport) is Welcome.SENT
    assert len(transport.delivered) == 1
    assert row_of(settings, "late@example.com") == ("sent", "1*,2,3")
    assert db(settings).ledger().find(VARIANT_MONTH).holder is None  # type: ignore[union-attr]


def test_no_welcome_while_a_newer_send_is_under_way(settings: Settings) -> None:
    sent_issue(settings)
    SubscriberStore(db(settings).engine).add("late@example.com")
    db(settings).ledger().start("2021-03", "Next", "memory", "cli")
    transport = MemoryTransport()
    assert welcome(settings, "late@example.com", transport) is Welcome.LEFT_TO_SEND
    assert transport.delivered == [] and row_of(settings, "late@example.com") == ("none", None)


def test_only_reader_with_nothing_in_the_issue_is_recorded_skipped(settings: Settings) -> None:
    sent_issue(settings)
    SubscriberStore(db(settings).engine).add(
        "anx@example.com", topics=["Anxiety Disorders"], topic_mode=TopicMode.ONLY
    )
    transport = MemoryTransport()
    assert welcome(settings, "anx@example.com", transport) is Welcome.SKIPPED
    assert transport.delivered == [] and row_of(settings, "anx@example.com") == ("skipped", None)
    assert db(settings).ledger().find(VARIANT_MONTH).holder is None  # type: ignore[union-attr]


def test_welcome_none_and_no_completed_send_send_nothing(settings: Settings) -> None:
    SubscriberStore(db(settings).engine).add("early@example.com")
    transport = MemoryTransport()
    assert welcome(settings, "early@example.com", transport) is Welcome.NO_ISSUE
    sent_issue(settings)
    off = dataclasses.replace(settings, welcome="none")
    person = SubscriberStore(db(settings).engine).get("early@example.com")
    assert person is not None
    outcome = send_welcome(
        off, db(settings), person.id, transport=lambda: transport, signer=load_signer(settings)
    )
    assert outcome is Welcome.OFF and transport.delivered == []


def test_a_refused_welcome_is_recorded_failed_and_a_failed_transport_undoes_the_claim(
    settings: Settings,
) -> None:
    sent_issue(settings)
    store = SubscriberStore(db(settings).engine)
    store.add("bad@example.com")
    store.add("down@example.com")
    transport = MemoryTransport()
    transport.refuse["bad@example.com"] = "550 no such user"
    assert welcome(settings, "bad@example.com", transport) is Welcome.REFUSED
    assert row_of(settings, "bad@example.com") == ("failed", "1,2,3")
    transport.fail_next(TemporaryDeliveryError("451 try later"))
    assert welcome(settings, "down@example.com", transport) is Welcome.REFUSED
    assert row_of(settings, "down@example.com") == ("none", None)
    assert db(settings).ledger().find(VARIANT_MONTH).holder is None  # type: ignore[union-attr]


def test_a_welcome_that_died_on_the_wire_never_blocks_the_next_and_is_unconfirmed(
    db_settings: Settings,
) -> None:
    settings = db_settings
    sent_issue(settings)
    store = SubscriberStore(db(settings).engine)
    died = store.add("died@example.com", topics=["Attachment"])
    store.add("next@example.com")
    child = subprocess.Popen(["true"])
    child.wait()
    dead = Owner(run_id="dead-welcome", host=socket.gethostname(), pid=child.pid)
    latest = store_welcome.latest_completed(db(settings).engine)
    assert latest is not None and latest.issue == VARIANT_MONTH
    ids = MessageIds(latest.issue, "editor@example.org")
    assert store_welcome.claim(
        db(settings).engine, latest, died.id, dead, message_ids=ids, variant="1*,2,3"
    )  # … and the process died before recording anything
    transport = MemoryTransport()
    assert welcome(settings, "next@example.com", transport) is Welcome.SENT
    assert row_of(settings, "died@example.com") == ("unconfirmed", "1*,2,3")
    assert row_of(settings, "next@example.com") == ("sent", "1,2,3")
    again = MemoryTransport()
    send_issue(
        settings,
        db(settings),
        write_issue(settings),
        transport=again,
        resume=True,
        resend_unconfirmed=True,
    )
    [(message, recipient)] = again.delivered
    assert recipient.email == "died@example.com"
    text, html = bodies(build_message(message, recipient))
    check_body(Reader("died@example.com", (), TopicMode.ALL, (1, 2, 3), (1,)), text, html)
