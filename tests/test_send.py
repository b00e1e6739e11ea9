"""The send run through the memory and outbox transports, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from newsletter.archive import list_archived
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.delivery.base import DeliveryResult
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import (
    AlreadySentError,
    PermanentDeliveryError,
    SendError,
    TemporaryDeliveryError,
)
from newsletter.mime import build_message
from newsletter.models import LedgerStatus, OutgoingMessage
from newsletter.send import Progress, SendSummary, plan_send, send_issue, send_report, send_test
from newsletter.store.engine import open_database
from newsletter.store.schema import deliveries
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db
from tests.sendkit import (
    MONTH,
    bodies,
    check_personal_links,
    delivered_ids,
    ledger_rows,
    load_issue,
    populate,
    read_maildir,
    send_row,
    tokens_of,
)


class DiesAfterDelivering(MemoryTransport):
    """Delivers batch number ``die_at`` and then 'crashes' before the ledger hears about it."""

    def __init__(self, max_batch: int, die_at: int) -> None:
        super().__init__(max_batch=max_batch)
        self.die_at = die_at

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        results = super().send_batch(message)
        if len(self.batches) == self.die_at:
            raise RuntimeError("the process died here")
        return results


class Recorder(Progress):
    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.summary: SendSummary | None = None

    def start(self, total: int, *, issue: str, transport: str) -> None:
        self.total = total

    def advance(self, sent: int, failed: int) -> None:
        self.done += sent + failed

    def finish(self, summary: SendSummary) -> None:
        self.summary = summary


def test_every_active_subscriber_gets_exactly_one_personal_copy(db_settings: Settings) -> None:
    people = populate(db_settings, 11)
    transport = MemoryTransport(max_batch=4)
    progress = Recorder()
    summary = send_issue(
        db_settings,
        db(db_settings),
        load_issue(db_settings),
        transport=transport,
        progress=progress,
    )

    assert sorted(delivered_ids(transport)) == sorted(s.id for s in people.active)
    assert set(transport.emails) == people.active_emails
    assert all(len(batch.recipients) <= 4 for batch in transport.batches)
    assert summary.status == "completed" and summary.sent == 11 and summary.failed == 0
    assert progress.total == 11 and progress.done == 11 and progress.summary == summary
    assert set(ledger_rows(db_settings).values()) == {"sent"}
    for message, recipient in transport.delivered:
        assert recipient.subscriber_id is not None
        mail = build_message(message, recipient)
        text, html = bodies(mail)
        check_personal_links(
            db_settings, recipient.subscriber_id, text, html, mail["List-Unsubscribe"]
        )
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["Message-ID"] == recipient.message_id
    assert len({r.message_id for _, r in transport.delivered}) == 11
    # Rendered once: every batch carries the very same HTML string.
    assert len({id(batch.html) for batch in transport.batches}) == 1


def test_outbox_messages_carry_rfc8058_headers_and_own_links(db_settings: Settings) -> None:
    people = populate(db_settings, 3)
    send_issue(db_settings, db(db_settings), load_issue(db_settings), transport_name="outbox")
    messages = read_maildir(db_settings.delivery.section("outbox").path)
    by_email = {s.email: s.id for s in people.active}
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in messages) == sorted(by_email)
    for mail in messages:
        address = str(mail["To"]).split("<")[-1].rstrip(">")
        text, html = bodies(mail)
        check_personal_links(
            db_settings, by_email[address], text, html, str(mail["List-Unsubscribe"])
        )
        assert str(mail["List-Unsubscribe"]).strip().startswith("<https://")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["Subject"] == load_issue(db_settings).subject


def test_second_send_refuses_and_says_when(db_settings: Settings) -> None:
    populate(db_settings, 2)
    issue = load_issue(db_settings)
    send_issue(db_settings, db(db_settings), issue, transport=MemoryTransport())
    again = MemoryTransport()
    with pytest.raises(AlreadySentError, match=r"already sent on \d{4}-\d\d-\d\d"):
        send_issue(db_settings, db(db_settings), issue, transport=again)
    assert again.delivered == []
    # --resume on a finished send has nothing left to do and sends nothing.
    summary = send_issue(db_settings, db(db_settings), issue, transport=again, resume=True)
    assert again.delivered == [] and summary.status == "completed"


def test_temporary_failure_gives_the_batch_back_and_resume_sends_it(db_settings: Settings) -> None:
    people = populate(db_settings, 10)
    issue = load_issue(db_settings)
    first = MemoryTransport(max_batch=3)
    first.fail_after = 6  # batch 3 fails after two good ones
    with pytest.raises(TemporaryDeliveryError, match="--resume"):
        send_issue(db_settings, db(db_settings), issue, transport=first)
    assert len(first.delivered) == 6
    assert send_row(db_settings)["status"] == "interrupted"  # type: ignore[index]
    assert list(ledger_rows(db_settings).values()).count("sent") == 6
    assert "pending" not in ledger_rows(db_settings).values()

    with pytest.raises(SendError, match="--resume"):
        send_issue(db_settings, db(db_settings), issue, transport=MemoryTransport())
    second = MemoryTransport(max_batch=3)
    summary = send_issue(db_settings, db(db_settings), issue, transport=second, resume=True)
    everyone = delivered_ids(first) + delivered_ids(second)
    assert sorted(everyone) == sorted(s.id for s in people.active)
    assert summary.status == "completed" and summary.sent == 4 and summary.found_unconfirmed == 0


def test_permanent_failure_stops_with_the_providers_message(db_settings: Settings) -> None:
    populate(db_settings, 4)
    transport = MemoryTransport(max_batch=2)
    transport.fail_next(PermanentDeliveryError("SendGrid refused it with HTTP 401: bad key"))
    with pytest.raises(PermanentDeliveryError, match="HTTP 401: bad key"):
        send_issue(db_settings, db(db_settings), load_issue(db_settings), transport=transport)
    assert ledger_rows(db_settings) == {}
    assert send_row(db_settings)["status"] == "interrupted"  # type: ignore[index]


def test_crash_leaves_unconfirmed_and_only_resend_unconfirmed_resends(
    db_settings: Settings,
) -> None:
    people = populate(db_settings, 9)
    issue = load_issue(db_settings)
    crashed = DiesAfterDelivering(max_batch=2, die_at=2)
    with pytest.raises(RuntimeError):
        send_issue(db_settings, db(db_settings), issue, transport=crashed)
    in_flight = delivered_ids(crashed)[2:]
    assert len(in_flight) == 2
    assert list(ledger_rows(db_settings).values()).count("pending") == 2

    resumed = MemoryTransport(max_batch=2)
    summary = send_issue(db_settings, db(db_settings), issue, transport=resumed, resume=True)
    assert summary.found_unconfirmed == 2 and summary.unconfirmed == 2
    assert set(delivered_ids(resumed)).isdisjoint(delivered_ids(crashed))
    assert sorted(delivered_ids(crashed) + delivered_ids(resumed)) == sorted(
        s.id for s in people.active
    )
    report = send_report(db(db_settings), MONTH)
    assert {email for email, status, _ in report.problems if status == "unconfirmed"} == {
        r.email for _, r in crashed.delivered[2:]
    }

    again = MemoryTransport(max_batch=2)
    summary = send_issue(
        db_settings, db(db_settings), issue, transport=again, resend_unconfirmed=True
    )
    assert sorted(delivered_ids(again)) == sorted(in_flight)
    # The resent copy keeps the first copy's Message-ID, so mail systems can spot the twin.
    first_ids = {r.subscriber_id: r.message_id for _, r in crashed.delivered}
    assert all(first_ids[r.subscriber_id] == r.message_id for _, r in again.delivered)
    assert summary.unconfirmed == 0 and set(ledger_rows(db_settings).values()) == {"sent"}


def test_someone_unsubscribed_between_runs_is_not_sent_to(db_settings: Settings) -> None:
    people = populate(db_settings, 6)
    issue = load_issue(db_settings)
    first = MemoryTransport(max_batch=2)
    first.fail_after = 2
    with pytest.raises(TemporaryDeliveryError):
        send_issue(db_settings, db(db_settings), issue, transport=first)
    store = SubscriberStore(open_database(db_settings.database_url))
    leaver = people.active[-1]
    store.unsubscribe(leaver.id, reason="clicked", source="web")
    second = MemoryTransport(max_batch=2)
    send_issue(db_settings, db(db_settings), issue, transport=second, resume=True)
    assert leaver.id not in delivered_ids(first) + delivered_ids(second)
    assert len(delivered_ids(first) + delivered_ids(second)) == 5


def test_stop_event_ends_cleanly_after_the_current_batch(db_settings: Settings) -> None:
    populate(db_settings, 8)
    stop = threading.Event()

    class StopsOnFirst(MemoryTransport):
        def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
            stop.set()  # as the CLI's SIGTERM handler would, mid-batch
            return super().send_batch(message)

    transport = StopsOnFirst(max_batch=3)
    summary = send_issue(
        db_settings, db(db_settings), load_issue(db_settings), transport=transport, stop=stop
    )
    assert summary.status == "interrupted" and summary.sent == 3
    assert "--resume" in (summary.error or "")
    assert send_row(db_settings)["status"] == "interrupted"  # type: ignore[index]
    assert sorted(ledger_rows(db_settings).values()) == ["sent"] * 3


def test_refused_recipient_is_failed_and_reported(db_settings: Settings) -> None:
    people = populate(db_settings, 3)
    transport = MemoryTransport()
    transport.refuse[people.active[1].email] = "550 no such mailbox"
    summary = send_issue(db_settings, db(db_settings), load_issue(db_settings), transport=transport)
    assert summary.sent == 2 and summary.failed == 1
    report = send_report(db(db_settings), MONTH)
    assert report.problems == ((people.active[1].email, "failed", "550 no such mailbox"),)


def test_test_copies_are_marked_and_not_in_the_ledger(db_settings: Settings) -> None:
    populate(db_settings, 2)
    transport = MemoryTransport()
    results = send_test(
        db_settings,
        load_issue(db_settings),
        ["editor@example.org", "friend@example.net"],
        transport=transport,
    )
    assert all(r.accepted for r in results)
    assert transport.emails == ["editor@example.org", "friend@example.net"]
    assert all(m.subject.startswith("[TEST] ") for m in transport.batches)
    assert send_row(db_settings) is None
    with pytest.raises(SendError, match="not an email address"):
        send_test(db_settings, load_issue(db_settings), ["nobody"], transport=transport)


def test_dry_run_sends_nothing_and_counts(db_settings: Settings) -> None:
    populate(db_settings, 5)
    transport = MemoryTransport()
    summary = send_issue(
        db_settings, db(db_settings), load_issue(db_settings), transport=transport, dry_run=True
    )
    assert summary.status == "dry-run" and summary.recipients == 5
    assert transport.batches == [] and send_row(db_settings) is None
    assert plan_send(db_settings, db(db_settings), load_issue(db_settings)).recipients == 5


def test_archive_is_written_without_personal_data(db_settings: Settings) -> None:
    people = populate(db_settings, 4)
    transport = MemoryTransport()
    issue = load_issue(db_settings)
    send_issue(db_settings, db(db_settings), issue, transport=transport)
    folder = db_settings.archive_dir / MONTH
    assert sorted(p.name for p in folder.iterdir()) == [
        "email.txt",
        "index.html",
        "issue.md",
        "records",  # the articles' DOI records (public metadata)
        "send.json",
    ]
    assert (folder / "issue.md").read_text(encoding="utf-8") == issue.path.read_text(
        encoding="utf-8"
    )
    record = json.loads((folder / "send.json").read_text(encoding="utf-8"))
    assert record["issue"] == MONTH and record["subject"] == issue.subject
    assert record["transport"] == "memory" and record["counts"]["sent"] == 4
    assert record["started_at"] and record["finished_at"]
    secrets = tokens_of(
        [r.list_unsubscribe_url or "" for _, r in transport.delivered]
        + [v for _, r in transport.delivered for v in r.substitutions.values()]
    )
    assert secrets
    for path in (p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        assert "__NL_" not in text
        assert not any(token in text for token in secrets), path
        assert not any(address in text for address in people.all_emails), path
    web = (folder / "index.html").read_text(encoding="utf-8")
    assert f"{db_settings.links.base_url}/subscribe" in web
    [archived] = list_archived(db_settings.archive_dir)
    assert archived.month == MONTH and archived.counts["sent"] == 4
    assert archived.web_path == folder / "index.html" and archived.finished_at is not None


def test_no_leftover_temporary_files_in_the_archive(db_settings: Settings, tmp_path: Path) -> None:
    populate(db_settings, 1)
    send_issue(db_settings, db(db_settings), load_issue(db_settings), transport=MemoryTransport())
    assert not [p for p in (db_settings.archive_dir / MONTH).iterdir() if p.name.startswith(".")]


# --- the command line -------------------------------------------------------------------------


def make_draft(project: Path, month: str = "2021-02") -> str:
    source = (project / "issues" / f"{MONTH}.md").read_text(encoding="utf-8")
    assert "status: ready" in source
    draft = source.replace("status: ready", "status: draft")
    (project / "issues" / f"{month}.md").write_text(draft, encoding="utf-8")
    return month


def cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


def test_cli_without_terminal_or_yes_refuses(project: Path, settings: Settings) -> None:
    populate(settings, 2)
    result = cli(project, "send", MONTH)
    assert result.exit_code == 2
    assert "no terminal" in result.output and "--yes" in result.output
    assert send_row(settings) is None


def test_cli_draft_is_sent_by_hand_after_a_warning(project: Path, settings: Settings) -> None:
    populate(settings, 2)
    month = make_draft(project)
    result = cli(project, "send", month, "--yes")
    assert result.exit_code == 0, result.output
    assert "is a draft" in result.output
    assert set(ledger_rows(settings, month).values()) == {"sent"}
    assert len(read_maildir(settings.delivery.section("outbox").path)) == 2


def test_cli_dry_run_and_test_copies_leave_no_send(project: Path, settings: Settings) -> None:
    populate(settings, 3)
    result = cli(project, "send", MONTH, "--dry-run")
    assert result.exit_code == 0 and "3 recipient(s) would get it" in result.output
    result = cli(project, "send", MONTH, "--test-to", "editor@example.org")
    assert result.exit_code == 0 and "test copy sent to editor@example.org" in result.output
    [mail] = read_maildir(settings.delivery.section("outbox").path)
    assert str(mail["Subject"]).startswith("[TEST] ") and mail["To"] == "editor@example.org"
    assert send_row(settings) is None


def test_cli_second_send_says_already_sent_and_succeeds(project: Path, settings: Settings) -> None:
    populate(settings, 2)
    assert cli(project, "send", MONTH, "--yes").exit_code == 0
    result = cli(project, "send", MONTH, "--yes")
    assert result.exit_code == 0
    assert re.search(
        r"already sent on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(2 recipients\)", result.output
    )
    assert "nothing to do" in result.output
    assert len(read_maildir(settings.delivery.section("outbox").path)) == 2


def test_cli_issue_with_errors_is_never_sent(project: Path, settings: Settings) -> None:
    populate(settings, 2)
    broken = (project / "issues" / f"{MONTH}.md").read_text(encoding="utf-8")
    (project / "issues" / "2021-03.md").write_text(
        broken.replace("Topics: ", "Topics: Not A Topic; ", 1), encoding="utf-8"
    )
    result = cli(project, "send", "2021-03", "--yes")
    assert result.exit_code == 1
    assert "2021-03.md:" in result.output and "Traceback" not in result.output
    assert send_row(settings, "2021-03") is None


def _talk(project: Path, month: str, answer: str) -> tuple[int, str]:
    """Run ``newsletter send MONTH`` on a pseudo-terminal and answer its question."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--project", str(project), "send", month],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"now? [y/N]" in seen:
            os.write(leader, answer.encode() + b"\n")
            answered = True
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=30)
    os.close(leader)
    return process.returncode, seen.decode("utf-8", "replace")


def test_cli_asks_on_a_terminal_and_a_no_sends_nothing(project: Path, settings: Settings) -> None:
    populate(settings, 2)
    month = make_draft(project)
    code, output = _talk(project, month, "n")
    assert "Send this draft now? [y/N]" in output and "Recipients: 2" in output
    assert code == 1 and send_row(settings, month) is None
    code, output = _talk(project, month, "y")
    assert code == 0, output
    assert set(ledger_rows(settings, month).values()) == {"sent"}


def test_claim_takes_only_people_still_active_and_not_yet_claimed(db_settings: Settings) -> None:
    """Between preparing a batch and claiming it, someone may leave or be claimed elsewhere."""
    from newsletter.store.ledger import Ledger, MessageIds

    people = populate(db_settings, 4, pending=0, gone=0)
    engine = open_database(db_settings.database_url)
    ledger = Ledger(engine)
    record = ledger.start(MONTH, "subject", "memory", "cli")
    ids = [s.id for s in people.active]
    message_ids = MessageIds(MONTH, db_settings.sender.email)
    assert ledger.claim_ids(record.id, 1, ids[:1], message_ids) is None
    SubscriberStore(engine).unsubscribe(ids[1], reason="left", source="web")
    assert ledger.claim_ids(record.id, 2, ids, message_ids) == {ids[2], ids[3]}
    assert [c.subscriber_id for c in ledger.candidates(record.id, after_id=0, limit=10)] == []
    assert ledger.counts(record.id)[LedgerStatus.PENDING] == 3
    assert ledger.mark_in_flight_unconfirmed(record.id) == 3


def test_no_active_subscriber_refuses_and_records_nothing(db_settings: Settings) -> None:
    populate(db_settings, 0)
    with pytest.raises(SendError, match="no active subscribers"):
        send_issue(
            db_settings, db(db_settings), load_issue(db_settings), transport=MemoryTransport()
        )
    assert send_row(db_settings) is None


def test_cli_issue_with_errors_is_not_sent_and_says_each_finding_once(
    project: Path, settings: Settings
) -> None:
    populate(settings, 2)
    source = (project / "issues" / f"{MONTH}.md").read_text(encoding="utf-8")
    broken = source.replace("Topics: ", "Topics: Depresion; ", 1)
    (project / "issues" / f"{MONTH}.md").write_text(broken, encoding="utf-8")
    result = cli(project, "send", MONTH, "--yes")
    assert result.exit_code == 1
    assert result.output.count('unknown topic "Depresion"') == 1
    assert "nothing was sent" in result.output
    assert "Traceback" not in result.output
    assert send_row(settings) is None
    assert not settings.delivery.section("outbox").path.exists() or not read_maildir(
        settings.delivery.section("outbox").path
    )


def test_the_quick_recipient_is_the_same_value_as_with_links(db_settings: Settings) -> None:
    from newsletter.batches import Personaliser
    from newsletter.models import Recipient
    from newsletter.tokens import Purpose, load_signer

    signer = load_signer(db_settings)
    quick = Personaliser(signer, db_settings.links).recipient(7, "r@example.org", "R", "<m@x>")
    links = db_settings.links
    slow = Recipient.with_links(
        subscriber_id=7,
        email="r@example.org",
        name="R",
        unsubscribe_url=links.unsubscribe_url(signer.sign(Purpose.UNSUBSCRIBE, 7)),
        preferences_url=links.preferences_url(signer.sign(Purpose.PREFERENCES, 7)),
        message_id="<m@x>",
    )
    assert quick == slow and vars(quick) == vars(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.email = "other@example.org"  # type: ignore[misc]


class CountsPending(MemoryTransport):
    """Notes how many rows of the send are ``pending`` each time a batch is handed over."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(max_batch=2)
        self.settings = settings
        self.pending_seen: list[int] = []

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        self.pending_seen.append(list(ledger_rows(self.settings).values()).count("pending"))
        return super().send_batch(message)


def test_resend_unconfirmed_claims_one_batch_at_a_time(db_settings: Settings) -> None:
    people = populate(db_settings, 7)
    issue = load_issue(db_settings)
    send_issue(db_settings, db(db_settings), issue, transport=MemoryTransport(max_batch=3))
    engine = open_database(db_settings.database_url)
    with engine.begin() as conn:  # as if every batch had been in flight when a run died
        conn.execute(sa.update(deliveries).values(status="unconfirmed"))
    again = CountsPending(db_settings)
    send_issue(db_settings, db(db_settings), issue, transport=again, resend_unconfirmed=True)
    assert sorted(delivered_ids(again)) == sorted(s.id for s in people.active)
    assert [len(batch.recipients) for batch in again.batches] == [2, 2, 2, 1]
    assert again.pending_seen == [2, 2, 2, 1]  # never more than the batch in hand
    assert set(ledger_rows(db_settings).values()) == {"sent"}
