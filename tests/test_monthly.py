"""The monthly job's decisions, on a real SQLite file, sending through the outbox (a Maildir)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.issues import load_topics, read_issue
from newsletter.models import SubscriberStatus
from newsletter.monthly import Decision, Outcome, month_status, run_monthly
from newsletter.schedule import run_once
from newsletter.send import send_issue
from newsletter.store.database import Database
from newsletter.store.engine import open_database
from newsletter.store.ledger import Ledger
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db
from tests.peers.sendgrid_server import Answer, Fault, PeerRequest, SendGridServer
from tests.peers.sendgrid_suppressions import SuppressionLists
from tests.schedkit import ACTIVE, add_people, edit_schedule, outbox_recipients, write_issue

TORONTO = ZoneInfo("America/Toronto")
MONTH = "2026-12"
FIRED = datetime(2026, 12, 1, 9, tzinfo=TORONTO)  # the shipped rule's December send time


@pytest.fixture
def ready(project: Path, db_settings: Settings) -> Settings:
    """A ready issue and a list, on each kind of database: the month's claim holds on both."""
    write_issue(project, MONTH, "ready")
    add_people(db_settings)
    return db_settings


def run(
    settings: Settings,
    minutes: float = 0,
    *,
    fired_at: datetime = FIRED,
    database: Database | None = None,
) -> Decision:
    return run_monthly(
        settings,
        database or db(settings),
        MONTH,
        now=fired_at + timedelta(minutes=minutes),
        fired_at=fired_at,
    )


def run_as_another_process(settings: Settings, minutes: float) -> Decision:
    """A run through its own engine, as a second scheduler process would make it."""
    with Database.open(settings.database_url) as own:
        return run(settings, minutes, database=own)


def test_a_ready_issue_is_sent_once(ready: Settings) -> None:
    first = run(ready, 0.5)
    second = run(ready, 6)

    assert first.outcome is Outcome.SENT
    assert first.summary is not None and first.summary.sent == len(ACTIVE)
    assert second.outcome is Outcome.SKIPPED and "already sent" in second.reason
    assert outbox_recipients(ready) == sorted(ACTIVE)
    claim = db(ready).claims.read(MONTH)
    assert claim is not None and claim.outcome == "sent"


def test_every_decision_is_logged_with_the_month_and_reason(
    ready: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="newsletter.monthly"):
        run(ready)
        run(ready, 1)
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.monthly"]
    assert lines[0].startswith(f"issue {MONTH}: sent: sent with outbox to 3 subscriber(s)")
    assert lines[1].startswith(f"issue {MONTH}: skipped: already sent")
    assert all("\n" not in line for line in lines)


def test_a_draft_waits_then_goes_out_when_ready(project: Path, settings: Settings) -> None:
    add_people(settings)
    write_issue(project, MONTH, "draft")

    waiting = run(settings, 0)
    again = run(settings, 5)
    write_issue(project, MONTH, "ready")
    sent = run(settings, 3 * 24 * 60)  # three days later: inside wait_for_ready (7d)

    assert waiting.outcome is Outcome.WAITING
    assert "draft" in waiting.reason and "2026-12-08 09:00" in waiting.reason
    assert again.outcome is Outcome.WAITING
    assert sent.outcome is Outcome.SENT
    assert outbox_recipients(settings) == sorted(ACTIVE)
    assert run(settings, 3 * 24 * 60 + 5).outcome is Outcome.SKIPPED


def test_a_missing_or_broken_issue_waits_too(project: Path, settings: Settings) -> None:
    missing = run(settings)
    assert missing.outcome is Outcome.WAITING
    assert f"issues/{MONTH}.md does not exist" in missing.reason
    write_issue(project, MONTH, "ready", broken=True)
    broken = run(settings, 5)
    assert broken.outcome is Outcome.WAITING
    assert "error" in broken.reason and f"issues/{MONTH}.md:" in broken.reason
    assert outbox_recipients(settings) == []


def test_gives_up_after_wait_for_ready_and_says_so(project: Path, settings: Settings) -> None:
    add_people(settings)
    write_issue(project, MONTH, "draft")
    assert run(settings).outcome is Outcome.WAITING

    late = run(settings, 7 * 24 * 60 + 1)
    write_issue(project, MONTH, "ready")
    after = run(settings, 8 * 24 * 60)

    assert late.outcome is Outcome.GAVE_UP
    assert "giving up for this month" in late.reason and "7d" in late.reason
    assert after.outcome is Outcome.SKIPPED and "given up" in after.reason
    assert outbox_recipients(settings) == []
    assert month_status(settings, db(settings), MONTH) == "given up"


def test_the_wait_counts_from_the_first_send_time(project: Path, settings: Settings) -> None:
    """A weekly cron rule fires again; the window still ends 7 days after the month's first fire."""
    write_issue(project, MONTH, "draft")
    run(settings)
    next_week = FIRED + timedelta(days=7)
    decision = run_monthly(
        settings, db(settings), MONTH, now=next_week + timedelta(minutes=1), fired_at=next_week
    )
    assert decision.outcome is Outcome.GAVE_UP


def test_an_issue_already_sent_by_hand_is_skipped(ready: Settings) -> None:
    issue = read_issue(ready.issues_dir / f"{MONTH}.md", load_topics(ready.topics_file))
    send_issue(ready, db(ready), issue)
    decision = run(ready)
    assert decision.outcome is Outcome.SKIPPED
    assert "already sent" in decision.reason and "by cli" in decision.reason
    assert outbox_recipients(ready) == sorted(ACTIVE)  # once each, from the manual send


def test_a_send_started_by_hand_and_unfinished_is_left_to_resume(ready: Settings) -> None:
    engine = open_database(ready.database_url)
    Ledger(engine).start(MONTH, "December", "outbox", "cli")  # a manual send that died

    decision = run(ready)

    assert decision.outcome is Outcome.SKIPPED
    assert (
        "is running" in decision.reason and f"newsletter send {MONTH} --resume" in decision.reason
    )
    assert db(ready).claims.read(MONTH) is None  # not marked sent: it is not
    assert month_status(ready, db(ready), MONTH) == "send running"
    assert outbox_recipients(ready) == []


def test_a_send_time_missed_beyond_the_grace_is_not_made_up(ready: Settings) -> None:
    decision = run(ready, 6 * 60 + 1)  # misfire_grace is 6h
    assert decision.outcome is Outcome.MISSED
    assert "misfire_grace (6h)" in decision.reason and f"newsletter send {MONTH}" in decision.reason
    assert outbox_recipients(ready) == []
    assert db(ready).claims.read(MONTH) is None


def test_inside_the_grace_it_is_made_up(ready: Settings) -> None:
    assert run(ready, 6 * 60 - 1).outcome is Outcome.SENT


def test_two_concurrent_runs_send_once(ready: Settings) -> None:
    """Two threads, two engines, one database: the claim row lets exactly one send."""
    start = threading.Barrier(2)
    decisions: list[Decision] = []

    def job() -> None:
        start.wait()
        decisions.append(run_as_another_process(ready, 1))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(d.outcome for d in decisions) == [Outcome.SENT, Outcome.SKIPPED]
    assert outbox_recipients(ready) == sorted(ACTIVE)


def test_two_waiting_schedulers_send_once_when_it_becomes_ready(
    project: Path, settings: Settings
) -> None:
    add_people(settings)
    write_issue(project, MONTH, "draft")
    assert run(settings).outcome is Outcome.WAITING
    assert run(settings).outcome is Outcome.WAITING
    write_issue(project, MONTH, "ready")
    start = threading.Barrier(3)
    decisions: list[Decision] = []

    def job() -> None:
        start.wait()
        decisions.append(run_as_another_process(settings, 10))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    outcomes = sorted(d.outcome for d in decisions)
    assert outcomes == [Outcome.SENT, Outcome.SKIPPED, Outcome.SKIPPED]
    assert outbox_recipients(settings) == sorted(ACTIVE)


def test_schedule_status_says_already_sent(ready: Settings) -> None:
    assert month_status(ready, db(ready), MONTH) == "ready"
    run(ready)
    assert month_status(ready, db(ready), MONTH) == "already sent"


def test_run_once_acts_only_on_a_fresh_or_waiting_month(project: Path, settings: Settings) -> None:
    add_people(settings)
    write_issue(project, MONTH, "draft")
    assert (
        run_once(settings, db(settings), now=FIRED - timedelta(minutes=1)) is None
    )  # nothing due yet
    first = run_once(settings, db(settings), now=FIRED + timedelta(minutes=2))
    assert first is not None and first.outcome is Outcome.WAITING
    write_issue(project, MONTH, "ready")
    later = run_once(
        settings, db(settings), now=FIRED + timedelta(days=2)
    )  # past the grace, still waiting
    assert later is not None and later.outcome is Outcome.SENT
    assert run_once(settings, db(settings), now=FIRED + timedelta(days=2, minutes=5)) is None
    assert outbox_recipients(settings) == sorted(ACTIVE)


def test_run_once_does_not_send_late_after_downtime(ready: Settings) -> None:
    assert run_once(ready, db(ready), now=FIRED + timedelta(days=1)) is None
    assert outbox_recipients(ready) == []


# --- SendGrid: suppressions are pulled first ------------------------------------------------------


@pytest.fixture
def sendgrid_project(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> tuple[Settings, SuppressionLists]:
    edit_schedule(project, transport="sendgrid")
    env = {
        "NEWSLETTER_SENDGRID_HOST": sendgrid_server.url,
        "SENDGRID_API_KEY": sendgrid_server.api_key,
    }
    settings = load_settings(project, env=env)
    write_issue(project, MONTH, "ready")
    add_people(settings)
    lists = SuppressionLists().install(sendgrid_server)
    return settings, lists


def test_a_sendgrid_send_first_pulls_suppressions(
    sendgrid_project: tuple[Settings, SuppressionLists], sendgrid_server: SendGridServer
) -> None:
    settings, lists = sendgrid_project
    lists.add("bounces", ACTIVE[0])

    decision = run(settings)

    assert decision.outcome is Outcome.SENT
    assert sorted(sendgrid_server.recipients()) == sorted(ACTIVE[1:])
    store = SubscriberStore(open_database(settings.database_url))
    bounced = store.get(ACTIVE[0])
    assert bounced is not None and bounced.status is SubscriberStatus.BOUNCED
    assert [s.path for s in sendgrid_server.seen][:4] == [
        "/v3/suppression/unsubscribes",
        "/v3/suppression/bounces",
        "/v3/suppression/spam_reports",
        "/v3/suppression/invalid_emails",
    ]


def test_a_failed_suppression_pull_holds_the_send_for_the_next_look(
    sendgrid_project: tuple[Settings, SuppressionLists], sendgrid_server: SendGridServer
) -> None:
    settings, _lists = sendgrid_project
    sendgrid_server.inject(Fault(status=401))

    held = run(settings)
    retried = run(settings, 5)

    assert held.outcome is Outcome.WAITING and "suppressions" in held.reason
    assert retried.outcome is Outcome.SENT
    assert sorted(sendgrid_server.recipients()) == sorted(ACTIVE)


# --- the command ----------------------------------------------------------------------------------


def cron_last_fired(days_ago: int) -> str:
    """A monthly cron line whose latest send time is ``days_ago`` days back, whatever today is.

    The command reads the real clock; a rule placed relative to it keeps the test from depending
    on the date it runs (the shipped rule is due on the first Tuesday of every month).
    """
    assert days_ago < 28, "the next monthly send time must still be ahead"
    return f"0 9 {(datetime.now(TORONTO) - timedelta(days=days_ago)).day} * *"


def test_scheduler_once_with_nothing_due(project: Path, settings: Settings) -> None:
    rule = settings.send
    lookback = max(rule.misfire_grace, rule.wait_for_ready) + timedelta(days=2)
    edit_schedule(project, cron=cron_last_fired(lookback.days))
    result = CliRunner().invoke(main, ["--project", str(project), "scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "nothing is due now" in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--recheck-every", "0s"], "--recheck-every"),
        (["--recheck-every", "soon"], "--recheck-every"),
        (["--fire-at", "tomorrow"], "--fire-at"),
    ],
)
def test_scheduler_refuses_bad_options(
    project: Path, clean_env: None, args: list[str], complaint: str
) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "scheduler", *args])
    assert result.exit_code == 2
    assert complaint in result.output


def test_scheduler_refuses_a_bad_cron_line_before_starting(project: Path, clean_env: None) -> None:
    edit_schedule(project, cron="0 9 * * 9")
    result = CliRunner().invoke(main, ["--project", str(project), "scheduler"])
    assert result.exit_code == 2
    assert "`send.cron`" in result.output and "Traceback" not in result.output


def test_a_failed_send_is_reported_and_left_to_resume(
    sendgrid_project: tuple[Settings, SuppressionLists], sendgrid_server: SendGridServer
) -> None:
    settings, _lists = sendgrid_project

    def last_list_then_refuse(_request: PeerRequest) -> Answer:
        sendgrid_server.inject(Fault(status=403))  # the Mail Send request that follows
        return Answer(200, [])

    sendgrid_server._routes.insert(
        0, ("GET", "/v3/suppression/invalid_emails", last_list_then_refuse)
    )

    failed = run(settings)
    later = run(settings, 5)

    assert failed.outcome is Outcome.FAILED
    assert "403" in failed.reason and f"newsletter send {MONTH} --resume" in failed.reason
    assert later.outcome is Outcome.SKIPPED and "failed earlier" in later.reason
    assert sendgrid_server.recipients() == []
    assert month_status(settings, db(settings), MONTH) == "send failed"


@pytest.mark.parametrize("once", [[], ["--once"]])
def test_scheduler_refuses_to_start_without_the_transport_secrets(
    project: Path, clean_env: None, once: list[str]
) -> None:
    edit_schedule(project, transport="sendgrid")
    result = CliRunner().invoke(main, ["--project", str(project), "scheduler", *once])
    assert result.exit_code == 2
    assert "SENDGRID_API_KEY" in result.output and "Traceback" not in result.output
