"""A send of a few thousand subscribers through the SendGrid stand-in (schema and limits enforced)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import (
    ATTEMPTS,
    CUSTOM_ARG_ISSUE,
    CUSTOM_ARG_SUBSCRIBER,
    SendGridTransport,
)
from newsletter.errors import TemporaryDeliveryError
from newsletter.models import Placeholder, SubscriberStatus
from newsletter.send import Progress, send_issue
from newsletter.store.engine import open_database
from newsletter.store.schema import deliveries
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer
from tests.dbkit import db
from tests.peers.sendgrid_server import Fault, SendGridServer
from tests.sendkit import MONTH, ledger_rows, load_issue, seed, send_row

BATCH = 250


@pytest.fixture
def sg_project(project: Path, clean_env: None, sendgrid_server: SendGridServer) -> Path:
    """The project set to SendGrid in batches of 250, the stand-in's address and key in the env."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("transport: outbox", "transport: sendgrid")
    path.write_text(text.replace("batch_size: 1000", f"batch_size: {BATCH}"), encoding="utf-8")
    return project


def sg_env(server: SendGridServer) -> dict[str, str]:
    return {"NEWSLETTER_SENDGRID_HOST": server.url, "SENDGRID_API_KEY": server.api_key}


@pytest.fixture
def sg_settings(sg_project: Path, sendgrid_server: SendGridServer) -> Settings:
    return load_settings(sg_project, env=sg_env(sendgrid_server))


class InjectAfterFirstBatch(Progress):
    """Queues faults on the stand-in once the first batch went through: mid-run trouble."""

    def __init__(self, server: SendGridServer, *faults: Fault) -> None:
        self.server, self.faults, self.batches = server, faults, 0

    def advance(self, sent: int, failed: int) -> None:
        self.batches += 1
        if self.batches == 1:
            self.server.inject(*self.faults)


@pytest.mark.slow  # 3000 people, and the 429 waits for its reset second
def test_thousands_each_get_one_personal_message_despite_5xx_and_429(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    active, _ = seed(sg_settings, 3000)
    reset = str(int(time.time()) + 1)
    progress = InjectAfterFirstBatch(
        sendgrid_server, Fault(500), Fault(503), Fault(429, {"X-RateLimit-Reset": reset})
    )
    summary = send_issue(sg_settings, db(sg_settings), load_issue(sg_settings), progress=progress)

    assert summary.status == "completed" and summary.sent == len(active) == 2700
    assert sendgrid_server.rejected == []
    statuses = [seen.status for seen in sendgrid_server.seen]
    assert {500, 503, 429} <= set(statuses)
    counted = Counter(sendgrid_server.recipients())
    assert set(counted.values()) == {1}
    assert set(counted) == {f"person{i}@example.com" for i in active}
    assert all(len(body["personalizations"]) <= BATCH for body in sendgrid_server.accepted)

    signer = load_signer(sg_settings)
    for body, personalization in sendgrid_server.personalizations():
        subscriber_id = int(personalization["custom_args"][CUSTOM_ARG_SUBSCRIBER])
        assert personalization["custom_args"][CUSTOM_ARG_ISSUE] == MONTH
        assert personalization["to"][0]["email"] == f"person{subscriber_id}@example.com"
        unsubscribe = personalization["substitutions"][Placeholder.UNSUBSCRIBE_URL.value]
        preferences = personalization["substitutions"][Placeholder.PREFERENCES_URL.value]
        assert signer.verify(Purpose.UNSUBSCRIBE, unsubscribe.rsplit("/", 1)[1]) == subscriber_id
        assert signer.verify(Purpose.PREFERENCES, preferences.rsplit("/", 1)[1]) == subscriber_id
        assert personalization["headers"]["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert personalization["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
        assert Placeholder.UNSUBSCRIBE_URL.value in body["content"][1]["value"]

    rows = ledger_rows(sg_settings)
    assert len(rows) == 2700 and set(rows.values()) == {"sent"}
    with open_database(sg_settings.database_url).connect() as conn:
        provider_ids = set(conn.scalars(sa.select(deliveries.c.provider_message_id)))
        ours = dict(conn.execute(sa.select(deliveries.c.email, deliveries.c.message_id)).all())
    assert provider_ids == set(sendgrid_server.message_ids)
    # Each copy carries the Message-ID the ledger keeps for its recipient (docs/sending.md).
    carried = {
        p["to"][0]["email"]: p["headers"]["Message-ID"]
        for _, p in sendgrid_server.personalizations()
    }
    assert carried == ours and len(set(carried.values())) == len(carried)


def test_outage_beyond_retries_interrupts_and_resume_finishes(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    active, _ = seed(sg_settings, 1000)
    issue = load_issue(sg_settings)
    # No waiting between retries here; the retry policy itself is D1's test. One batch at a
    # time, so the one request after the first batch meets all the faults.
    one_at_a_time = replace(sg_settings.delivery.of(SendGridSettings), concurrency=1)
    impatient = SendGridTransport(one_at_a_time, sleep=lambda _: None)
    outage = InjectAfterFirstBatch(sendgrid_server, *[Fault(502)] * ATTEMPTS)
    with pytest.raises(TemporaryDeliveryError, match="--resume"):
        send_issue(sg_settings, db(sg_settings), issue, transport=impatient, progress=outage)
    assert send_row(sg_settings)["status"] == "interrupted"  # type: ignore[index]
    assert set(ledger_rows(sg_settings).values()) == {"sent"}
    assert len(ledger_rows(sg_settings)) == BATCH

    summary = send_issue(sg_settings, db(sg_settings), issue, resume=True)
    assert summary.status == "completed" and summary.found_unconfirmed == 0
    counted = Counter(sendgrid_server.recipients())
    assert set(counted.values()) == {1} and len(counted) == len(active)


def test_refusal_stops_the_cli_with_what_sendgrid_said(
    sg_project: Path, sendgrid_server: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sg_env(sendgrid_server).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(sg_project)
    seed(settings, 30)
    sendgrid_server.inject(
        Fault(
            403, body={"errors": [{"message": "The from address is not verified", "field": "from"}]}
        )
    )
    result = CliRunner().invoke(main, ["--project", str(sg_project), "send", MONTH, "--yes"])
    assert result.exit_code == 1, result.output
    assert "The from address is not verified" in result.output
    assert "--resume" in result.output
    assert sendgrid_server.recipients() == []
    assert ledger_rows(settings) == {}


def test_the_unsubscribe_links_sent_work_on_the_web_app(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    """Mail clients' RFC 8058 one-click POST to the List-Unsubscribe URL unsubscribes that reader."""
    from newsletter.web.app import create_app
    from tests.webkit import in_process

    seed(sg_settings, 40)
    send_issue(sg_settings, db(sg_settings), load_issue(sg_settings))
    store = SubscriberStore(open_database(sg_settings.database_url))
    chosen = list(sendgrid_server.personalizations())[::10]
    with in_process(create_app(sg_settings)) as mail:  # no cookie, no CSRF token
        for _, personalization in chosen:
            url = personalization["headers"]["List-Unsubscribe"].strip("<>")
            path = url.removeprefix(sg_settings.links.base_url)
            answer = mail.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 200
    left = {p["to"][0]["email"] for _, p in chosen}
    for _, personalization in sendgrid_server.personalizations():
        address = personalization["to"][0]["email"]
        subscriber = store.get(address)
        assert subscriber is not None
        expected = SubscriberStatus.UNSUBSCRIBED if address in left else SubscriberStatus.ACTIVE
        assert subscriber.status is expected


def test_batches_go_out_concurrently_on_kept_connections_each_claimed_first(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    """``delivery.sendgrid.concurrency`` requests in flight, on keep-alive connections.

    With 0.3 s per request, 12 batches one at a time would take 3.6 s; 4 in flight take ~1 s.
    Every request the stand-in holds is of a batch already claimed (``pending``) in the ledger.
    """
    active, _ = seed(sg_settings, 3300)  # 2970 active: 12 batches of at most 250
    sendgrid_server.latency = 0.3
    engine = open_database(sg_settings.database_url)
    pending_seen: list[int] = []

    class Watch(Progress):
        def advance(self, sent: int, failed: int) -> None:
            with engine.connect() as conn:
                pending_seen.append(
                    conn.execute(
                        sa.select(sa.func.count()).where(deliveries.c.status == "pending")
                    ).scalar_one()
                )

    settings = replace_sendgrid(sg_settings, concurrency=4)
    started = time.perf_counter()
    summary = send_issue(settings, db(settings), load_issue(settings), progress=Watch())
    seconds = time.perf_counter() - started

    assert summary.status == "completed" and summary.sent == len(active)
    assert sendgrid_server.recipient_count == len(active) and sendgrid_server.rejected == []
    assert sendgrid_server.peak_in_flight == 4
    assert sendgrid_server.connections <= 4  # one kept connection per delivering thread
    assert seconds < 3.0
    # Each batch was pending (claimed) before its request: a finished one is still pending
    # while up to three more are on the wire; never more than 4 + 2 batches at once.
    assert max(pending_seen) <= 6 * BATCH
    assert ledger_rows(settings) and all(s == "sent" for s in ledger_statuses(settings))


def test_concurrency_one_sends_one_batch_at_a_time(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    seed(sg_settings, 1100)
    sendgrid_server.latency = 0.05
    settings = replace_sendgrid(sg_settings, concurrency=1)
    summary = send_issue(settings, db(settings), load_issue(settings), progress=Progress())
    assert summary.status == "completed"
    assert sendgrid_server.peak_in_flight == 1 and sendgrid_server.connections == 1


def test_a_refused_batch_among_concurrent_ones_stops_the_run_and_is_given_back(
    sg_settings: Settings, sendgrid_server: SendGridServer
) -> None:
    """One batch refused (400) while others are in flight: the run stops; the others are recorded."""
    active, _ = seed(sg_settings, 3300)
    sendgrid_server.latency = 0.05
    sendgrid_server.inject(Fault(delay=0.0, process=True), Fault(400))
    settings = replace_sendgrid(sg_settings, concurrency=4)
    with pytest.raises(Exception, match="HTTP 400"):
        send_issue(settings, db(settings), load_issue(settings), progress=Progress())
    statuses = Counter(ledger_statuses(settings))
    assert statuses["pending"] == 0  # the refused batch was given back, the others recorded
    assert statuses["sent"] == sendgrid_server.recipient_count < len(active)


def replace_sendgrid(settings: Settings, **changes: object) -> Settings:
    sendgrid = replace(settings.delivery.of(SendGridSettings), **changes)  # type: ignore[arg-type]
    sections = {**settings.delivery.sections, "sendgrid": sendgrid}
    return replace(settings, delivery=replace(settings.delivery, sections=sections))


def ledger_statuses(settings: Settings) -> list[str]:
    with open_database(settings.database_url).connect() as conn:
        return [str(s) for s in conn.execute(sa.select(deliveries.c.status)).scalars()]
