"""SMTP transport against a real aiosmtpd server on 127.0.0.1 (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from newsletter.delivery.base import PartialPermanentError, PartialTemporaryError, split_batches
from newsletter.delivery.smtp import SmtpSettings, SmtpTransport
from newsletter.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.models import OutgoingMessage, Placeholder
from tests.conftest import REPO
from tests.peers.fixtures import make_message
from tests.peers.smtp_server import SmtpServer

PASSWORD = "s3cret-smtp-pass"


def settings_for(server: SmtpServer, **changes) -> SmtpSettings:
    """One connection unless a test asks for more: the order of arrivals is then the batch's."""
    base = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        security="none",
        username=None,
        rate=1000.0,
        connections=1,
    )
    return replace(base, **changes)


def send_all(transport: SmtpTransport, message: OutgoingMessage):
    results = []
    with transport:
        for batch in split_batches(message, transport.max_batch):
            results += transport.send_batch(batch)
    return results


def test_each_recipient_gets_multipart_alternative_text_first(smtp_server):
    message = make_message(3)
    transport = SmtpTransport(settings_for(smtp_server))
    results = send_all(transport, message)

    assert [r.accepted for r in results] == [True] * 3
    assert len(smtp_server.messages) == 3
    for recipient, received in zip(message.recipients, smtp_server.messages, strict=True):
        mail = received.message
        assert received.rcpt_tos == [recipient.email]
        assert received.mail_from == "newsletter@example.org"
        assert mail.get_content_type() == "multipart/alternative"
        parts = list(mail.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert mail["Message-ID"] == recipient.message_id
        assert mail["Date"]
        assert mail["List-Unsubscribe"] == f"<{recipient.list_unsubscribe_url}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["To"].addresses[0].addr_spec == recipient.email
        url = recipient.substitutions[Placeholder.UNSUBSCRIBE_URL]
        for part in parts:
            body = part.get_content()
            assert url in body
            assert "__NL_" not in body
    assert [r.provider_message_id for r in results] == [r.message_id for r in message.recipients]


def test_one_connection_is_reused(smtp_server):
    transport = SmtpTransport(settings_for(smtp_server))
    send_all(transport, make_message(5))
    assert len(smtp_server.messages) == 5
    assert smtp_server.connections == 1
    assert transport.connects == 1


def test_starttls_with_login(smtp_certificate):
    with SmtpServer(
        security="starttls", certificate=smtp_certificate, username="newsletter", password=PASSWORD
    ) as server:
        settings = settings_for(
            server, security="starttls", username="newsletter", password=PASSWORD
        )
        transport = SmtpTransport(settings, tls_context=smtp_certificate.client_context())
        results = send_all(transport, make_message(2))
        assert all(r.accepted for r in results)
        assert len(server.messages) == 2


def test_implicit_tls_with_login(smtp_certificate):
    with SmtpServer(
        security="tls", certificate=smtp_certificate, username="newsletter", password=PASSWORD
    ) as server:
        settings = settings_for(server, security="tls", username="newsletter", password=PASSWORD)
        transport = SmtpTransport(settings, tls_context=smtp_certificate.client_context())
        send_all(transport, make_message(2))
        assert len(server.messages) == 2


def test_wrong_password_is_permanent_and_not_shown(smtp_certificate):
    with SmtpServer(
        security="starttls", certificate=smtp_certificate, username="newsletter", password=PASSWORD
    ) as server:
        settings = settings_for(
            server, security="starttls", username="newsletter", password="wrong-password-xyz"
        )
        transport = SmtpTransport(settings, tls_context=smtp_certificate.client_context())
        with pytest.raises(PermanentDeliveryError) as caught:
            send_all(transport, make_message(1))
        assert "NEWSLETTER_SMTP_PASSWORD" in str(caught.value)
        assert "wrong-password-xyz" not in str(caught.value)
        assert server.messages == []


def test_untrusted_certificate_is_permanent(smtp_certificate):
    with SmtpServer(security="starttls", certificate=smtp_certificate) as server:
        transport = SmtpTransport(settings_for(server, security="starttls"))  # system CAs only
        with pytest.raises(PermanentDeliveryError, match="TLS failed"):
            send_all(transport, make_message(1))


def test_starttls_required_but_not_offered(smtp_server):
    transport = SmtpTransport(settings_for(smtp_server, security="starttls"))
    with pytest.raises(PermanentDeliveryError, match="does not offer STARTTLS"):
        send_all(transport, make_message(1))


def test_username_without_password_is_a_config_error(smtp_server):
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_PASSWORD"):
        SmtpTransport(settings_for(smtp_server, username="newsletter"))


def test_refused_recipient_is_a_result_and_the_rest_go_out():
    with SmtpServer(refuse={"reader2@example.com"}) as server:
        transport = SmtpTransport(settings_for(server))
        results = send_all(transport, make_message(3))
        assert [r.accepted for r in results] == [True, False, True]
        assert results[1].error is not None and results[1].error.startswith("550 5.1.1")
        assert [m.rcpt_tos for m in server.messages] == [
            ["reader1@example.com"],
            ["reader3@example.com"],
        ]
        assert server.connections == 1


def test_dropped_connection_is_reopened_once():
    with SmtpServer(drop_after=2) as server:
        transport = SmtpTransport(settings_for(server))
        results = send_all(transport, make_message(4))
        assert all(r.accepted for r in results)
        assert server.drops == 1
        assert [m.rcpt_tos[0] for m in server.messages] == [
            f"reader{i}@example.com" for i in range(1, 5)
        ]
        assert transport.connects == 2


def test_a_server_that_stores_then_dies_before_replying_makes_one_duplicate():
    """The client cannot tell "stored, reply lost" from "not stored": resending is the safe side."""
    with SmtpServer(die_after_storing=1) as server:
        transport = SmtpTransport(settings_for(server))
        message = make_message(2)
        results = send_all(transport, message)
        assert all(r.accepted for r in results)
        got = [(m.rcpt_tos[0], m.message["Message-ID"]) for m in server.messages]
        first, second = message.recipients
        assert got == [
            (first.email, first.message_id),
            (first.email, first.message_id),  # the silent duplicate, with the same Message-ID
            (second.email, second.message_id),
        ]
        assert transport.connects == 2


def test_sending_md_says_plainly_that_this_duplicate_cannot_be_prevented():
    text = (REPO / "docs" / "sending.md").read_text(encoding="utf-8")
    guarantees = text.split("### Never twice, never lost", 1)[1].split("\n### ", 1)[0]
    smtp = text.split("\n### smtp", 1)[1].split("\n### ", 1)[0]
    for section in (guarantees, smtp):
        said = " ".join(section.split())
        assert "stores the message and dies before replying" in said
        assert "duplicate" in said and "no client can prevent" in said


def test_server_gone_is_temporary():
    server = SmtpServer().start()
    transport = SmtpTransport(settings_for(server))
    message = make_message(2)
    try:
        transport.open()
        transport.send_batch(replace(message, recipients=message.recipients[:1]))
    finally:
        server.stop()
    with pytest.raises(TemporaryDeliveryError):
        transport.send_batch(replace(message, recipients=message.recipients[1:]))
    transport.close()
    assert len(server.messages) == 1


def test_connection_refused_is_temporary(smtp_server):
    port = smtp_server.port
    smtp_server.stop()
    transport = SmtpTransport(
        SmtpSettings(host="127.0.0.1", port=port, security="none", username=None, rate=10)
    )
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        transport.open()


def test_rate_limits_messages_per_second(smtp_server):
    """Measured loosely: 10 messages at 20/s need at least 9 intervals of 50 ms."""
    transport = SmtpTransport(settings_for(smtp_server, rate=20.0))
    started = time.monotonic()
    send_all(transport, make_message(10))
    elapsed = time.monotonic() - started
    assert elapsed >= 0.4
    arrivals = [m.at for m in smtp_server.messages]
    assert arrivals[-1] - arrivals[0] >= 0.4


def test_pacing_with_an_injected_clock(smtp_server):
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    transport = SmtpTransport(
        settings_for(smtp_server, rate=4.0), sleep=sleep, clock=lambda: now[0]
    )
    send_all(transport, make_message(5))
    assert sleeps == pytest.approx([0.25] * 4)


def test_421_closing_reconnects_and_sends():
    with SmtpServer(mail_replies=["421 4.3.2 Service shutting down"]) as server:
        transport = SmtpTransport(settings_for(server))
        results = send_all(transport, make_message(2))
        assert all(r.accepted for r in results)
        assert len(server.messages) == 2
        assert transport.connects == 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Try again later", TemporaryDeliveryError),
        ("550 5.7.1 Sender address rejected", PermanentDeliveryError),
    ],
)
def test_sender_refused_by_the_server(reply, error):
    with SmtpServer(mail_replies=[reply]) as server:
        transport = SmtpTransport(settings_for(server))
        with pytest.raises(error) as caught:
            send_all(transport, make_message(1))
        assert reply.split(" ", 1)[1] in str(caught.value)
        assert server.messages == []


# --- a pool of connections (delivery.smtp.connections) ---------------------------------------


def test_a_pool_of_connections_sends_each_recipient_once_in_one_batch():
    with SmtpServer() as server:
        transport = SmtpTransport(settings_for(server, connections=3, rate=300.0))
        assert transport.max_batch == 150
        message = make_message(30)
        results = send_all(transport, message)
        got = sorted(m.rcpt_tos[0] for m in server.messages)
        assert got == sorted(r.email for r in message.recipients)
        # Results come back in the batch's order whichever connection sent each.
        assert [r.recipient for r in results] == list(message.recipients)
        assert all(r.accepted for r in results)
        assert server.connections == 3 and transport.connects == 3


def test_the_rate_is_the_total_over_all_connections(smtp_server):
    """A clock that stands still: every slot handed out is one interval after the one before,
    whichever connection takes it, so n messages wait 0, 1, ..., n-1 intervals (not n/3)."""
    sleeps: list[float] = []
    transport = SmtpTransport(
        settings_for(smtp_server, rate=4.0, connections=3), sleep=sleeps.append, clock=lambda: 50.0
    )
    send_all(transport, make_message(9))
    assert sorted(sleeps) == pytest.approx([0.25 * k for k in range(1, 9)])
    assert len(smtp_server.messages) == 9


def test_a_connection_that_fails_stops_alone_and_says_who_was_not_sent():
    with SmtpServer(mail_replies=["451 4.3.0 Try again later"]) as server:
        transport = SmtpTransport(settings_for(server, connections=3, rate=300.0))
        message = make_message(12)
        with transport, pytest.raises(PartialTemporaryError, match="451") as caught:
            transport.send_batch(message)
        err = caught.value
        [refused] = err.unsent
        sent = {m.rcpt_tos[0] for m in server.messages}
        assert refused.email not in sent and len(sent) == 11
        assert sorted(r.recipient.email for r in err.answered) == sorted(sent)
        assert all(r.accepted for r in err.answered)


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("17", "17"), ("two", "'two'")])
def test_connections_out_of_range_is_a_located_config_error(project, value, shown):
    from newsletter.config import load_settings

    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("connections: 3 ", f"connections: {value} "), encoding="utf-8")
    line = 1 + text[: text.index("connections: 3 ")].count("\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(project, env={})
    message = str(caught.value)
    assert f"schedule.yaml:{line}: `delivery.smtp.connections`: expected " in message, message
    assert "from 1 to 16" in message and message.endswith(f"got {shown}"), message


def test_lines_that_start_with_a_dot_arrive_whole(smtp_server):
    """The message bytes are dot-stuffed (RFC 5321 4.5.2) on the way and unstuffed by the server."""
    text = ".starts with a dot\n..two dots\nmiddle . dot\n.\nlast line"
    message = replace(make_message(2), text=text, html=None)
    results = send_all(SmtpTransport(settings_for(smtp_server)), message)
    assert all(r.accepted for r in results)
    for received in smtp_server.messages:
        assert b"\n.starts with a dot" in received.raw  # sent as is, so stuffing was needed
        body = received.message.get_body(("plain",))
        assert body is not None
        assert body.get_content().replace("\r\n", "\n").rstrip("\n") == text


def test_a_permanent_refusal_stops_every_connection_and_gives_the_batch_back():
    with SmtpServer(mail_replies=["550 5.7.1 Sender address rejected"] * 3) as server:
        transport = SmtpTransport(settings_for(server, connections=3, rate=300.0))
        message = make_message(12)
        with transport, pytest.raises(PartialPermanentError, match="550") as caught:
            transport.send_batch(message)
        assert server.messages == []
        assert caught.value.answered == []
        assert sorted(r.email for r in caught.value.unsent) == sorted(
            r.email for r in message.recipients
        )
