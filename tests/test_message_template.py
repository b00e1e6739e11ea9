"""Message bytes from a per-variant template equal, parsed back, what ``mime.build_message`` makes.

Every header (the multipart boundary aside, which the ``email`` package draws at random for each
message) and every part's headers and content, for the fixture messages, the real rendered sample
issue and the hostile names and addresses of tests/test_names_in_headers.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given

from newsletter.config import Settings
from newsletter.delivery.template import MessageTemplate
from newsletter.mime import build_message
from newsletter.models import OutgoingMessage, Placeholder, Recipient
from newsletter.renderings import Renderings
from newsletter.send import outgoing
from newsletter.tokens import Purpose, load_signer
from tests.peers.fixtures import make_message, make_recipient
from tests.sendkit import load_issue
from tests.test_names_in_headers import (
    EXAMPLES,
    addresses,
    check_parsed,
    check_wire,
    names,
    parse,
    recipient_named,
    the_rule,
)

DATE = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def headers(mail: EmailMessage) -> list[tuple[str, str]]:
    out = []
    for name, value in mail.items():
        if name.lower() == "content-type" and mail.is_multipart():
            value = f"{mail.get_content_type()} (boundary aside)"
        out.append((name, str(value)))
    return out


def parts(mail: EmailMessage) -> list[EmailMessage]:
    return list(mail.iter_parts()) if mail.is_multipart() else [mail]  # type: ignore[arg-type]


def assert_same(ours: bytes, theirs: bytes) -> None:
    a, b = parse(ours), parse(theirs)
    assert headers(a) == headers(b)
    assert len(parts(a)) == len(parts(b))
    for mine, reference in zip(parts(a), parts(b), strict=True):
        assert list(mine.items()) == list(reference.items())
        assert mine.get_content() == reference.get_content()


def reference(message: OutgoingMessage, recipient: Recipient, linesep: str) -> bytes:
    mail = build_message(message, recipient, date=DATE)
    return mail.as_bytes(policy=mail.policy.clone(linesep=linesep))


@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
@pytest.mark.parametrize("html", [True, False])
def test_fixture_messages_equal_the_email_package(linesep: str, html: bool) -> None:
    message = make_message(50) if html else make_message(50, html=None)
    template = MessageTemplate(message, date=DATE, linesep=linesep)
    for recipient in message.recipients:
        ours = template.render(recipient)
        assert ours.count(b"\r\n" if linesep == "\r\n" else b"\n") > 5
        assert_same(ours, reference(message, recipient, linesep))
        check_wire(ours, linesep.encode())


def test_the_rendered_sample_issue_equals_the_email_package(settings: Settings) -> None:
    rendered = Renderings(settings, load_issue(settings)).get(None)
    signer = load_signer(settings)
    recipients = []
    for number in (1, 42, 99_999, 123_456_789):
        unsubscribe = settings.links.unsubscribe_url(signer.sign(Purpose.UNSUBSCRIBE, number))
        recipients.append(
            Recipient.with_links(
                subscriber_id=number,
                email=f"reader{number}@example.com",
                name=f"Reader Nº {number}",
                unsubscribe_url=unsubscribe,
                preferences_url=settings.links.preferences_url(
                    signer.sign(Purpose.PREFERENCES, number)
                ),
                message_id=f"<2021-01.{number}.abcdef@example.org>",
            )
        )
    message = outgoing(settings, rendered, tuple(recipients), rendered.subject)
    for linesep in ("\r\n", "\n"):
        templates = MessageTemplate(message, date=DATE, linesep=linesep)
        for recipient in recipients:
            assert_same(templates.render(recipient), reference(message, recipient, linesep))


def test_a_link_with_an_equals_sign_in_a_quoted_printable_part() -> None:
    long_line = "x" * 90 + " é " + "y" * 90  # long and not ASCII: quoted-printable or base64
    message = replace(
        make_message(2),
        text=f"{long_line}\nUnsubscribe: {Placeholder.UNSUBSCRIBE_URL.value}\n",
        html=f"<p>{long_line}</p><a href='{Placeholder.PREFERENCES_URL.value}'>p</a>",
    )
    recipient = make_recipient(7)
    odd = {p: v + "?a=b&c=d" for p, v in recipient.substitutions.items()}
    recipient = replace(recipient, substitutions=odd)
    assert_same(
        MessageTemplate(message, date=DATE).render(recipient), reference(message, recipient, "\r\n")
    )


def test_readers_the_template_cannot_hold_are_built_by_the_email_package() -> None:
    message = make_message(1)
    base = message.recipients[0]
    template = MessageTemplate(message, date=DATE)
    for odd in (
        replace(base, email="zoë@example.com"),  # SMTPUTF8
        replace(base, list_unsubscribe_url=None),  # a test copy
    ):
        assert not template.fits(odd)
        assert_same(template.render(odd), reference(message, odd, "\r\n"))


def test_no_header_depends_on_the_subscriber_number() -> None:
    """The reader's number is in no header, so a reader without one fits the template."""
    message = make_message(1)
    reader = message.recipients[0]
    template = MessageTemplate(message, date=DATE)
    numberless = replace(reader, subscriber_id=None)
    assert template.fits(numberless)
    assert template.render(numberless) == template.render(reader)
    assert_same(template.render(numberless), reference(message, numberless, "\r\n"))


def test_the_date_of_each_message_is_its_own() -> None:
    message = make_message(1)
    template = MessageTemplate(message, date=DATE)
    later = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
    mail = parse(template.render(message.recipients[0], later))
    assert mail["Date"].datetime == later


@EXAMPLES
@given(name=names, address=addresses)
def test_hostile_names_and_addresses_through_the_template(name: str, address: str) -> None:
    """The trust issue's property: the literal name, no header broken or added; and equal."""
    accepted, stored = the_rule(name, address)
    if not accepted:
        return
    recipient = recipient_named(stored, address)
    message = replace(make_message(1), recipients=(recipient,))
    ours = MessageTemplate(message, date=DATE).render(recipient)
    check_wire(ours, b"\r\n")
    check_parsed(parse(ours), stored, address)
    assert_same(ours, reference(message, recipient, "\r\n"))


def raw_bodies(data: bytes) -> list[str]:
    """Each part's body as it stands on the wire (still quoted-printable)."""
    return [str(part.get_payload(decode=False)) for part in parts(parse(data))]


@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
def test_bodies_are_byte_for_byte_the_email_packages_and_lines_stay_within_76(
    linesep: str,
) -> None:
    """Long links too: their lines get the soft breaks the ``email`` package gives them."""
    message = make_message(3)
    long_links = {p: v + "?" + "a=b&" * 40 for p, v in message.recipients[0].substitutions.items()}
    reader = replace(message.recipients[0], substitutions=long_links)
    for recipient in (*message.recipients, reader):
        ours = MessageTemplate(message, date=DATE, linesep=linesep).render(recipient)
        theirs = reference(message, recipient, linesep)
        assert raw_bodies(ours) == raw_bodies(theirs)
        for part in parts(parse(ours)):
            assert part["Content-Transfer-Encoding"] == "quoted-printable"
        body_lines = ours.split(linesep.encode() * 2, 1)[1].split(linesep.encode())
        assert max(map(len, body_lines)) <= 76
