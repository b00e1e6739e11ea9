"""A reader's name is literal text in every transport's message, whatever it is.

Property tests drive arbitrary names (control characters, RFC 2047 look-alikes, very long and
non-ASCII text) and addresses through the SMTP transport to the real aiosmtpd peer, the outbox
into a real Maildir and the SendGrid request body (checked by the stand-in's schema): either the
name rule refuses the name, or the message parses back to exactly that name and address with no
header broken or added. Then the issue's case end to end: a reader named ``=?utf-8?b?DQo=?=``.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from dataclasses import replace
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.delivery.base import DeliveryResult, Transport
from newsletter.delivery.outbox import OutboxSettings, OutboxTransport
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import SendGridTransport
from newsletter.delivery.smtp import SmtpSettings, SmtpTransport
from newsletter.errors import InvalidNameError, SubscriberError
from newsletter.mime import (
    _PLAIN_ADDRESS,
    AddressHeader,
    MessageBuildError,
    check_address,
    display_name_wire,
)
from newsletter.models import OutgoingMessage, Recipient
from newsletter.send import send_issue, send_report
from newsletter.store.engine import open_database
from newsletter.store.schema import subscribers
from newsletter.store.subscribers import SubscriberStore, clean_name, normalise_email
from tests.dbkit import db
from tests.peers.fixtures import make_message
from tests.peers.sendgrid_server import mail_send_errors
from tests.peers.smtp_server import SmtpServer
from tests.sendkit import MONTH, ledger_rows, load_issue, read_maildir, seed
from tests.test_send_smtp import smtp_settings

THE_NAME = "=?utf-8?b?DQo=?="  # the issue's name: an encoded word for CR LF
EXAMPLES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Only these headers, once each: anything else in a parsed message was injected.
HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Precedence",
    "Feedback-ID",
    "X-Newsletter-Issue",
    "Content-Type",
    "MIME-Version",
]

encoded_words = st.builds(
    "=?{}?{}?{}?=".format,
    st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "x-unknown", ""]),
    st.sampled_from(["b", "B", "q", "Q", "x"]),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_?", max_size=24
    ),
)
nasty = st.sampled_from(
    [THE_NAME, '"', "\\", "<a@b.c>", ",", ";", ":", "(c)", "@", " ", "\r\n", "\t", "\x00", "\x85"]
)
names = st.one_of(
    st.text(max_size=40),
    st.text(min_size=150, max_size=260),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=80),
    st.lists(st.one_of(encoded_words, nasty, st.text(max_size=8)), max_size=8).map(" ".join),
    st.lists(st.one_of(encoded_words, nasty), max_size=6).map("".join),
    st.sampled_from([THE_NAME, "Zoë Ö'Brien", "José García", "李小龍", "😀" * 183, "a" * 200]),
)


def _address(raw: str) -> str:
    try:
        return normalise_email(raw)
    except SubscriberError:
        return "reader@example.com"  # an address the list would refuse is not the point here


addresses = st.one_of(
    st.emails().map(_address),
    st.sampled_from(["ann@example.org", "o'brien+news@sub.example.co.uk", "x@example.com"]),
)


def recipient_named(name: str | None, address: str) -> Recipient:
    base = make_message(1).recipients[0]
    return replace(base, name=name, email=address)


def parse(raw: bytes) -> EmailMessage:
    """The message as a receiver reads it (with the default, modern policy).

    A non-ASCII address makes an SMTPUTF8 message, whose headers are UTF-8 text (RFC 6532).
    """
    if raw.isascii():
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
    else:
        parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def check_wire(raw: bytes, linesep: bytes) -> None:
    """Every header line ends with ``linesep``, holds no other CR or LF and fits 998 characters."""
    head = raw.split(linesep + linesep, 1)[0]
    for line in head.split(linesep):
        assert b"\r" not in line and b"\n" not in line, line
        assert len(line) <= 998
        assert line[:1] in (b" ", b"\t") or re.match(rb"[A-Za-z-]+: ", line), line


def check_parsed(parsed: EmailMessage, name: str | None, address: str) -> None:
    """One To, the literal name and the address; only the headers we write, once each."""
    assert sorted(parsed.keys()) == sorted(HEADERS)
    [to] = parsed["To"].addresses
    assert to.display_name == (name or "")
    assert to.addr_spec == address
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("PPRNet Monthly", "newsletter@example.org")


def the_rule(name: str, address: str) -> tuple[bool, str | None]:
    """(accepted, the name as stored); a refused name is refused by the builder too."""
    try:
        stored = clean_name(name)
    except InvalidNameError as err:
        event("refused by the name rule")
        assert err.problem and "\n" not in err.problem
        with pytest.raises(MessageBuildError, match="the To header: the name"):
            AddressHeader("To", name, address)
        return False, None
    wire = display_name_wire(stored) if stored else ""
    event("built: " + ("encoded word" if wire.startswith("=?utf-8?b?") else "plain or quoted"))
    return True, stored


# --- the property, through each transport ------------------------------------------------------


@pytest.fixture(scope="module")
def smtp_peer() -> Iterator[tuple[SmtpServer, SmtpTransport]]:
    """One aiosmtpd server and one open SMTP transport for all examples."""
    with SmtpServer() as server:
        smtp = SmtpSettings(
            host="127.0.0.1", port=server.port, security="none", username=None, rate=10_000
        )
        with SmtpTransport(smtp) as transport:
            yield server, transport


@EXAMPLES
@given(name=names, address=addresses)
def test_smtp_messages_carry_the_literal_name(
    smtp_peer: tuple[SmtpServer, SmtpTransport], name: str, address: str
) -> None:
    accepted, stored = the_rule(name, address)
    if not accepted:
        return
    server, transport = smtp_peer
    before = len(server.messages)
    [result] = transport.send_batch(one(stored, address))
    assert result.accepted, result.error
    received = server.messages[before]
    assert received.rcpt_tos == [address]
    check_wire(received.raw, b"\r\n")
    check_parsed(parse(received.raw), stored, address)


def one(name: str | None, address: str) -> OutgoingMessage:
    """The fixture message to one recipient with this name and address."""
    return replace(make_message(1), recipients=(recipient_named(name, address),))


@EXAMPLES
@given(name=names, address=addresses)
def test_outbox_files_carry_the_literal_name(
    tmp_path_factory: pytest.TempPathFactory, name: str, address: str
) -> None:
    accepted, stored = the_rule(name, address)
    if not accepted:
        return
    box = tmp_path_factory.mktemp("outbox")
    with OutboxTransport(OutboxSettings(box)) as transport:
        [result] = transport.send_batch(one(stored, address))
    assert result.accepted and result.provider_message_id is not None
    raw = mailbox.Maildir(box, create=False).get_bytes(result.provider_message_id)
    check_wire(raw, b"\n")
    check_parsed(parse(raw), stored, address)


@EXAMPLES
@given(name=names, address=addresses)
def test_sendgrid_requests_carry_the_literal_name(name: str, address: str) -> None:
    accepted, stored = the_rule(name, address)
    if not accepted:
        return
    transport = SendGridTransport(
        SendGridSettings(host="http://127.0.0.1:9", batch_size=1000, sandbox=True, api_key="SG.x")
    )
    body = transport.payload(one(stored, address))
    assert mail_send_errors(body) == []
    [to] = body["personalizations"][0]["to"]
    assert to == ({"email": address, "name": stored} if stored else {"email": address})


# --- one reader who cannot be built fails alone, in every transport -----------------------------

UNBUILDABLE = "Mallory\r\nBcc: everyone@example.com"  # in the database from before the name rule


def batch_with_one_unbuildable() -> OutgoingMessage:
    message = make_message(3)
    bad = replace(message.recipients[1], name=UNBUILDABLE)
    return replace(message, recipients=(message.recipients[0], bad, message.recipients[2]))


def check_one_failed(results: list[DeliveryResult]) -> None:
    by_email = {r.recipient.email: r for r in results}
    assert [by_email[f"reader{i}@example.com"].accepted for i in (1, 2, 3)] == [True, False, True]
    error = by_email["reader2@example.com"].error
    assert error is not None and "\n" not in error and "reader2" not in error
    assert error.startswith("the message could not be built: the To header: the name contains")


def test_smtp_sends_the_others_when_one_message_cannot_be_built(
    smtp_peer: tuple[SmtpServer, SmtpTransport],
) -> None:
    server, transport = smtp_peer
    before = len(server.messages)
    check_one_failed(transport.send_batch(batch_with_one_unbuildable()))
    got = sorted(m.rcpt_tos for m in server.messages[before:])  # any order: several connections
    assert got == [["reader1@example.com"], ["reader3@example.com"]]


def test_sendgrid_sends_the_others_when_one_cannot_be_built(
    sendgrid_server, sendgrid_settings
) -> None:
    results = SendGridTransport(sendgrid_settings).send_batch(batch_with_one_unbuildable())
    check_one_failed(results)
    [body] = sendgrid_server.accepted
    sent = [p["to"][0]["email"] for p in body["personalizations"]]
    assert sent == ["reader1@example.com", "reader3@example.com"]


def test_a_non_ascii_address_goes_as_smtputf8(
    smtp_peer: tuple[SmtpServer, SmtpTransport],
) -> None:
    server, transport = smtp_peer
    before = len(server.messages)
    [result] = transport.send_batch(one("Jörg", "jörg@exämple.com"))
    assert result.accepted, result.error
    received = server.messages[before]
    assert received.rcpt_tos == ["jörg@exämple.com"]
    assert "To: =?utf-8?b?SsO2cmc=?= <jörg@exämple.com>\r\n".encode() in received.raw
    assert [(a.display_name, a.addr_spec) for a in parse(received.raw)["To"].addresses] == [
        ("Jörg", "jörg@exämple.com")
    ]


def test_a_non_ascii_address_is_written_as_utf8_to_the_outbox(tmp_path: Path) -> None:
    with OutboxTransport(OutboxSettings(tmp_path / "box")) as transport:
        [result] = transport.send_batch(one("Jörg", "jörg@exämple.com"))
    assert result.accepted and result.provider_message_id is not None
    raw = mailbox.Maildir(tmp_path / "box", create=False).get_bytes(result.provider_message_id)
    assert "To: =?utf-8?b?SsO2cmc=?= <jörg@exämple.com>\n".encode() in raw
    assert [(a.display_name, a.addr_spec) for a in parse(raw)["To"].addresses] == [
        ("Jörg", "jörg@exämple.com")
    ]


# --- the issue's case, end to end ---------------------------------------------------------------


def put_names(settings: Settings, names_by_id: dict[int, str]) -> None:
    """Write names straight into the table, as data from before the name rule would be."""
    engine = open_database(settings.database_url)
    with engine.begin() as conn:
        for subscriber_id, name in names_by_id.items():
            conn.execute(
                subscribers.update().where(subscribers.c.id == subscriber_id).values(name=name)
            )


def check_the_run(settings: Settings, received: list[EmailMessage], active: set[int]) -> None:
    """Everyone got the issue once, the reader named THE_NAME literally; the unbuildable failed."""
    by_address = {m["To"].addresses[0].addr_spec: m for m in received}
    expected = {f"person{i}@example.com" for i in active} - {"person5@example.com"}
    assert set(by_address) == expected and len(received) == len(expected)
    assert by_address["person3@example.com"]["To"].addresses[0].display_name == THE_NAME
    rows = ledger_rows(settings)
    assert rows["person5@example.com"] == "failed"
    assert {status for a, status in rows.items() if a != "person5@example.com"} == {"sent"}
    report = send_report(db(settings), MONTH)
    [(address, status, error)] = report.problems
    assert (address, status) == ("person5@example.com", "failed")
    assert error is not None and error.startswith("the message could not be built:")
    assert "person5" not in error and "\n" not in error
    assert report.record.status == "completed"


def test_the_issue_case_through_the_outbox(settings: Settings) -> None:
    active, _ = seed(settings, 30)
    put_names(settings, {3: THE_NAME, 5: UNBUILDABLE})
    summary = send_issue(settings, db(settings), load_issue(settings))
    assert (summary.sent, summary.failed) == (len(active) - 1, 1)
    check_the_run(settings, read_maildir(settings.delivery.section("outbox").path), active)


def test_the_issue_case_through_smtp(project: Path, clean_env: None) -> None:
    with SmtpServer() as server:
        settings = smtp_settings(project, server)
        active, _ = seed(settings, 30)
        put_names(settings, {3: THE_NAME, 5: UNBUILDABLE})
        summary = send_issue(settings, db(settings), load_issue(settings))
        received = [m.message for m in server.messages]
    assert (summary.sent, summary.failed) == (len(active) - 1, 1)
    check_the_run(settings, received, active)


def test_the_issue_name_is_a_valid_name_everywhere(settings: Settings) -> None:
    store = SubscriberStore(open_database(settings.database_url))
    reader = store.add("literal@example.com", name=THE_NAME)
    assert reader.name == THE_NAME  # no control character in it: it is kept, as text
    with sa.create_engine(settings.database_url).connect() as conn:
        stored = conn.scalar(sa.select(subscribers.c.name).where(subscribers.c.id == reader.id))
    assert stored == THE_NAME


class CrashesLikeBefore(Transport):
    """What a send did before the fix: the whole batch crashed on one reader's name."""

    name: ClassVar[str] = "crashes"
    max_batch = 500

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        raise ValueError("invalid arguments; address parts cannot contain CR or LF")


def test_a_batch_left_stuck_before_the_fix_is_resent_with_only_the_bad_reader_failing(
    settings: Settings,
) -> None:
    active, _ = seed(settings, 30)
    put_names(settings, {3: THE_NAME, 5: UNBUILDABLE})
    issue = load_issue(settings)
    with pytest.raises(ValueError, match="CR or LF"):
        send_issue(settings, db(settings), issue, transport=CrashesLikeBefore())
    resumed = send_issue(settings, db(settings), issue, resume=True)
    assert resumed.found_unconfirmed == len(active) and resumed.sent == 0
    assert (
        read_maildir(settings.delivery.section("outbox").path) == []
    )  # nothing was written before
    again = send_issue(settings, db(settings), issue, resend_unconfirmed=True)
    assert (again.sent, again.failed, again.unconfirmed) == (len(active) - 1, 1, 0)
    check_the_run(settings, read_maildir(settings.delivery.section("outbox").path), active)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(_PLAIN_ADDRESS, fullmatch=True))
def test_the_fast_path_for_plain_addresses_accepts_only_what_the_header_parser_does(
    address: str,
) -> None:
    # The send skips the email package's parser for everyday addresses (it costs ~20 µs a
    # recipient); every address the shortcut lets through must parse back unchanged.
    parsed = Address(addr_spec=address)
    assert parsed.addr_spec == address and parsed.domain
    assert check_address("To", None, address) == ("", address)


@pytest.mark.parametrize(
    "address",
    ["a b@example.org", "a@b", "a..b@example.org", ".a@example.org", "a@-x.org", "a@x-.org"],
)
def test_the_fast_path_leaves_doubtful_addresses_to_the_full_check(address: str) -> None:
    assert not _PLAIN_ADDRESS.fullmatch(address)
