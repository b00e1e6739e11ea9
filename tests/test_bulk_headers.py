"""The headers of a bulk sender: List-Id, Precedence, Feedback-ID; no subscriber number anywhere.

One builder (``mime.list_headers``) gives them to every transport: the SMTP and outbox messages
(``build_message`` and its per-variant template) and SendGrid's request, whose tracking is off.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.config import Settings, default_list_id, load_settings
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import SendGridTransport
from newsletter.errors import ConfigError, PermanentDeliveryError
from newsletter.mime import build_message, check_message, list_headers
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.ledger import Ledger, MessageIds
from newsletter.store.schema import deliveries, subscribers
from newsletter.store.subscribers import email_hash
from tests.dbkit import db
from tests.peers.fixtures import make_message
from tests.peers.sendgrid_server import SendGridServer
from tests.sendkit import MONTH, load_issue, populate, read_maildir
from tests.test_config import _with

LIST_ID = "PPRNet Monthly <pprnet-monthly.example.org>"
FEEDBACK_ID = "2026-01:default:newsletter:pprnet-monthly.example.org"


def test_a_list_message_carries_list_id_precedence_and_feedback_id() -> None:
    message = make_message(1)
    mail = build_message(message, message.recipients[0])
    assert mail["List-Id"] == LIST_ID
    assert mail["Precedence"] == "bulk"
    assert mail["Feedback-ID"] == FEEDBACK_ID
    assert "X-Newsletter-Subscriber" not in mail


def test_each_variant_has_its_own_opaque_feedback_id() -> None:
    message = make_message(1)
    one = list_headers(replace(message, variant="2,1*,3"))["Feedback-ID"]
    other = list_headers(replace(message, variant="3*,1,2"))["Feedback-ID"]
    assert re.fullmatch(r"2026-01:v[0-9a-f]{8}:newsletter:pprnet-monthly\.example\.org", one)
    assert one != other != FEEDBACK_ID
    assert list_headers(replace(message, variant="2,1*,3"))["Feedback-ID"] == one  # stable


def test_mail_that_is_not_a_list_message_has_no_list_headers() -> None:
    message = replace(make_message(1), list_id=None)  # e.g. the confirmation email
    mail = build_message(message, message.recipients[0])
    assert not {"List-Id", "Precedence", "Feedback-ID"} & set(mail.keys())


def test_a_sender_name_with_header_syntax_leaves_the_list_id_without_a_label() -> None:
    message = replace(make_message(1), sender_name="=?utf-8?b?DQo=?= <x@y.z>")
    assert list_headers(message)["List-Id"] == "<pprnet-monthly.example.org>"


def test_a_line_break_in_the_list_id_is_refused() -> None:
    message = replace(make_message(1), list_id="a.example.org\r\nBcc: all@example.com")
    with pytest.raises(PermanentDeliveryError, match="List-Id header contains a line break"):
        check_message(message)


def test_both_parts_are_quoted_printable_even_with_short_ascii_lines() -> None:
    message = replace(make_message(1), text="Short.\n", html="<p>Short.</p>")
    mail = build_message(message, message.recipients[0])
    encodings = [part["Content-Transfer-Encoding"] for part in mail.iter_parts()]
    assert encodings == ["quoted-printable", "quoted-printable"]


# --- configuration ------------------------------------------------------------------------------


def test_the_list_id_comes_from_the_sender_unless_configured(project: Path) -> None:
    assert load_settings(project, env={}).sender.list_id == "pprnet-monthly.example.org"
    _with(project, "  reply_to:", "  list_id: digest.lists.example.org\n  reply_to:")
    assert load_settings(project, env={}).sender.list_id == "digest.lists.example.org"


def test_the_default_list_id_is_always_valid() -> None:
    assert default_list_id("Ψ Digest", "news@bücher.example") == "digest.xn--bcher-kva.example"
    assert default_list_id("Ψ", "news@example.org") == "news.example.org"
    assert default_list_id("A", "ü@exämple.org") == "a.xn--exmple-cua.org"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<digest.example.org>", "not a list id"),
        ("digest", "not a list id"),
        ("digest example.org", "not a list id"),
        ('"a\\r\\nBcc: x@y.z"', "must be a single line"),
    ],
)
def test_a_bad_list_id_names_the_key(project: Path, value: str, expected: str) -> None:
    _with(project, "  reply_to:", f"  list_id: {value}\n  reply_to:")
    with pytest.raises(ConfigError, match=rf"schedule\.yaml:\d+: `sender\.list_id`: .*{expected}"):
        load_settings(project, env={})


# --- Message-ID ---------------------------------------------------------------------------------


def test_message_ids_made_in_sql_match_python_and_hide_the_subscriber(
    db_settings: Settings,
) -> None:
    """The welcome email computes the claimed row's Message-ID in Python: both must agree."""
    people = populate(db_settings, 5, pending=0, gone=0)
    engine = open_database(db_settings.database_url)
    ledger = Ledger(engine)
    record = ledger.start(MONTH, "subject", "memory", "cli")
    ids = [s.id for s in people.active]
    message_ids = MessageIds(MONTH, db_settings.sender.email)
    assert ledger.claim_ids(record.id, 1, ids, message_ids) is None  # None: every one claimed
    with engine.connect() as conn:
        stored = dict(
            conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.message_id)).all()
        )
    assert stored == {sid: message_ids.for_id(sid) for sid in ids}
    assert len(set(stored.values())) == len(ids)
    for sid, message_id in stored.items():
        token = message_id.split(".")[1]
        assert re.fullmatch(rf"<{MONTH}\.\d+\.[0-9a-f]{{12}}@example\.org>", message_id)
        assert token != str(sid)


def test_the_largest_ids_do_not_overflow_in_sql(db_settings: Settings) -> None:
    biggest = MessageIds(MONTH, "a@example.org")
    biggest.multiplier, biggest.offset = MessageIds.MULTIPLIER_BELOW - 1, MessageIds.MODULUS - 1
    big = 2**31 - 1  # the largest id of an INTEGER column on PostgreSQL
    engine = open_database(db_settings.database_url)
    [person] = populate(db_settings, 1, pending=0, gone=0).active
    with engine.begin() as conn:  # a copy of the subscriber with the largest id
        row = dict(conn.execute(sa.select(subscribers)).one()._mapping)
        key = "big@example.com"
        row |= {"id": big, "email": key, "email_key": key, "email_hash": email_hash(key)}
        conn.execute(subscribers.insert(), row)
    record = Ledger(engine).start(MONTH, "subject", "memory", "cli")
    assert Ledger(engine).claim_ids(record.id, 1, [big, person.id], biggest) is None
    with engine.connect() as conn:
        stored = dict(
            conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.message_id)).all()
        )
    assert stored == {big: biggest.for_id(big), person.id: biggest.for_id(person.id)}


# --- a whole send -------------------------------------------------------------------------------


def test_no_header_of_a_sent_message_holds_the_readers_number(settings: Settings) -> None:
    """Not as a number of its own, as X-Newsletter-Subscriber and the Message-ID had it. (The
    signed link token in List-Unsubscribe still starts with it in base 36: tokens.py.)"""
    people = populate(settings, 3, pending=0, gone=0)
    send_issue(settings, db(settings), load_issue(settings))
    mails = read_maildir(settings.root / "outbox")
    assert len(mails) == 3
    numbers = {str(person.id) for person in people.active}
    for mail in mails:
        assert mail["List-Id"] == "PPRNet Monthly <pprnet-monthly.example.org>"
        assert mail["Feedback-ID"] == "2021-01:default:newsletter:pprnet-monthly.example.org"
        for name, value in mail.items():
            if name in ("To", "Date", "MIME-Version"):
                continue  # the reader's own name and address; numbers, none of them theirs
            words = set(re.split(r"[^0-9A-Za-z]+", str(value)))
            assert not words & numbers, (name, value)  # was: <2021-01.ID.NONCE@…>


def test_sendgrid_gets_the_list_headers_and_every_tracking_off(
    sendgrid_server: SendGridServer, sendgrid_settings: SendGridSettings
) -> None:
    """The stand-in checks the request against SendGrid's schema: the settings are valid there."""
    message = make_message(2)
    with SendGridTransport(sendgrid_settings) as transport:
        transport.send_batch(message)
    [body] = sendgrid_server.accepted
    assert body["headers"] == {
        "List-Id": LIST_ID,
        "Precedence": "bulk",
        "Feedback-ID": FEEDBACK_ID,
    }
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "ganalytics": {"enable": False},
        "subscription_tracking": {"enable": False},
    }
    assert all("X-Newsletter-Subscriber" not in p["headers"] for p in body["personalizations"])
