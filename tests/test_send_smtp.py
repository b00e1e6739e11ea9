"""A send through a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.config import Settings, load_settings
from newsletter.errors import TemporaryDeliveryError
from newsletter.send import send_issue, send_report
from newsletter.store.engine import open_database
from newsletter.store.schema import deliveries
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db
from tests.peers.smtp_server import SmtpServer
from tests.sendkit import MONTH, bodies, check_personal_links, ledger_rows, load_issue, seed


def smtp_settings(project: Path, server: SmtpServer, connections: int = 1) -> Settings:
    """The project pointed at ``server``: plain SMTP, no login, fast pacing, ``connections``."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("transport: outbox", "transport: smtp")
    text = text.replace("host: localhost", "host: 127.0.0.1")
    text = text.replace("port: 587", f"port: {server.port}")
    text = text.replace("security: starttls", "security: none")
    text = text.replace("username: newsletter", "username:")
    text = text.replace("connections: 3 ", f"connections: {connections} ")
    text = text.replace("rate: 20 ", "rate: 500 ")
    path.write_text(text, encoding="utf-8")
    return load_settings(project, env={})


@pytest.mark.parametrize("drop_after", [None, 7])
def test_each_active_subscriber_gets_one_message_over_smtp(
    project: Path, clean_env: None, drop_after: int | None
) -> None:
    with SmtpServer(refuse={"person3@example.com"}, drop_after=drop_after) as server:
        settings = smtp_settings(project, server)
        active, _ = seed(settings, 25)
        summary = send_issue(settings, db(settings), load_issue(settings))
        received = list(server.messages)
    expected = {f"person{i}@example.com" for i in active} - {"person3@example.com"}
    counted = Counter(r for message in received for r in message.rcpt_tos)
    assert set(counted.values()) == {1} and set(counted) == expected
    assert summary.sent == len(expected) and summary.failed == 1
    report = send_report(db(settings), MONTH)
    [(address, status, error)] = report.problems
    assert (address, status) == ("person3@example.com", "failed") and "550" in (error or "")
    store = SubscriberStore(open_database(settings.database_url))
    for message in received:
        mail = message.message
        subscriber = store.get(message.rcpt_tos[0])
        assert subscriber is not None
        text, html = bodies(mail)
        check_personal_links(settings, subscriber.id, text, html, str(mail["List-Unsubscribe"]))
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["Message-ID"] and mail["Date"]
    rows = ledger_rows(settings)
    assert Counter(rows.values()) == {"sent": len(expected), "failed": 1}
    if drop_after is not None:
        assert server.drops == 1 and server.connections == 2


def test_three_connections_send_every_reader_exactly_once_in_batched_records(
    project: Path, clean_env: None
) -> None:
    with SmtpServer() as server:
        settings = smtp_settings(project, server, connections=3)
        active, _ = seed(settings, 200)  # 180 active: more than one batch of 150
        summary = send_issue(settings, db(settings), load_issue(settings))
        counted = Counter(r for message in server.messages for r in message.rcpt_tos)
        connections = server.connections
    assert set(counted.values()) == {1}
    assert set(counted) == {f"person{i}@example.com" for i in active}
    assert summary.sent == len(active) and connections >= 2
    rows = ledger_rows(settings)
    assert Counter(rows.values()) == {"sent": len(active)}
    with open_database(settings.database_url).connect() as conn:
        batches = conn.scalar(sa.select(sa.func.count(sa.distinct(deliveries.c.batch))))
    assert batches == 2  # one claim and one record per 150 readers, not one per message


def test_a_connection_failing_mid_send_gives_back_only_its_reader_and_resume_sends_it_once(
    project: Path, clean_env: None
) -> None:
    with SmtpServer(mail_replies=["451 4.3.0 Try again later"]) as server:
        settings = smtp_settings(project, server, connections=3)
        active, _ = seed(settings, 30)
        with pytest.raises(TemporaryDeliveryError, match="451"):
            send_issue(settings, db(settings), load_issue(settings))
        first = Counter(r for message in server.messages for r in message.rcpt_tos)
        rows = ledger_rows(settings)
        # The others went on: everyone but the refused one was sent and recorded sent.
        assert len(first) == len(active) - 1 and set(first.values()) == {1}
        assert Counter(rows.values()) == {"sent": len(active) - 1}
        summary = send_issue(settings, db(settings), load_issue(settings), resume=True)
        counted = Counter(r for message in server.messages for r in message.rcpt_tos)
    assert summary.sent == 1 and summary.found_unconfirmed == 0
    assert set(counted.values()) == {1}
    assert set(counted) == {f"person{i}@example.com" for i in active}
    assert Counter(ledger_rows(settings).values()) == {"sent": len(active)}
