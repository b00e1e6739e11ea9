"""``newsletter report``: the ledger of one issue's send, as text and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.delivery.base import DeliveryResult
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import SendError
from newsletter.models import LedgerStatus, OutgoingMessage
from newsletter.send import send_issue, send_report
from tests.dbkit import db
from tests.sendkit import MONTH, load_issue, populate


class DiesOnSecondBatch(MemoryTransport):
    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        results = super().send_batch(message)
        if len(self.batches) == 2:
            raise RuntimeError("died")
        return results


def cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


@pytest.fixture
def troubled(settings: Settings) -> tuple[str, list[str]]:
    """A send with one refused address and two unconfirmed ones; returns (refused, unconfirmed)."""
    people = populate(settings, 6)
    first = DiesOnSecondBatch(max_batch=2)
    refused = people.active[0].email
    first.refuse[refused] = "550 mailbox unavailable"
    with pytest.raises(RuntimeError):
        send_issue(settings, db(settings), load_issue(settings), transport=first)
    send_issue(
        settings,
        db(settings),
        load_issue(settings),
        transport=MemoryTransport(max_batch=2),
        resume=True,
    )
    return refused, [r.email for r in first.batches[1].recipients]


def test_report_counts_times_transport_and_problem_addresses(
    project: Path, settings: Settings, troubled: tuple[str, list[str]]
) -> None:
    refused, unconfirmed = troubled
    report = send_report(db(settings), MONTH)
    assert report.counts == {
        LedgerStatus.PENDING: 0,
        LedgerStatus.SENT: 3,
        LedgerStatus.FAILED: 1,
        LedgerStatus.UNCONFIRMED: 2,
        LedgerStatus.SKIPPED: 0,
    }
    assert report.record.transport == "memory" and report.record.finished_at is not None

    result = cli(project, "report", MONTH)
    assert result.exit_code == 0, result.output
    assert "status:    completed" in result.output and "transport: memory" in result.output
    assert "sent 3, failed 1, unconfirmed 2" in result.output
    assert f"  {refused}  (550 mailbox unavailable)" in result.output
    for address in unconfirmed:
        assert f"  {address}\n" in result.output


def test_report_json(project: Path, settings: Settings, troubled: tuple[str, list[str]]) -> None:
    refused, unconfirmed = troubled
    result = cli(project, "report", str(project / "issues" / f"{MONTH}.md"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["issue"] == MONTH and data["status"] == "completed"
    assert data["counts"] == {
        "pending": 0,
        "sent": 3,
        "failed": 1,
        "unconfirmed": 2,
        "skipped": 0,
    }
    assert data["failed"] == [{"email": refused, "error": "550 mailbox unavailable"}]
    assert sorted(data["unconfirmed"]) == sorted(unconfirmed)
    assert data["started_at"] <= data["finished_at"]


def test_report_of_an_unsent_issue_is_a_clear_error(project: Path, settings: Settings) -> None:
    with pytest.raises(SendError, match="has not been sent"):
        send_report(db(settings), MONTH)
    result = cli(project, "report", MONTH)
    assert result.exit_code == 1 and "has not been sent" in result.output
    assert "Traceback" not in result.output


def test_report_remembers_who_was_resent_after_being_unconfirmed(
    project: Path, settings: Settings, troubled: tuple[str, list[str]]
) -> None:
    _, unconfirmed = troubled
    again = MemoryTransport(max_batch=2)
    issue = load_issue(settings)
    send_issue(settings, db(settings), issue, transport=again, resume=True, resend_unconfirmed=True)
    assert sorted(r.email for _, r in again.delivered) == sorted(unconfirmed)

    report = send_report(db(settings), MONTH, list_resent=True)
    assert report.counts[LedgerStatus.UNCONFIRMED] == 0  # all sent now …
    assert report.resent == 2  # … but two of them were reached twice, maybe
    assert sorted(report.resent_addresses) == sorted(unconfirmed)

    text = cli(project, "report", MONTH)
    assert text.exit_code == 0, text.output
    assert "resent:    2 after being unconfirmed" in text.output
    assert not any(f"  {address}\n" in text.output for address in unconfirmed)  # not unasked
    listed = cli(project, "report", MONTH, "--list-resent").output
    assert all(f"  {address}\n" in listed for address in unconfirmed)

    data = json.loads(cli(project, "report", MONTH, "--json").output)
    assert data["resent_after_unconfirmed"] == 2 and "resent" not in data
    data = json.loads(cli(project, "report", MONTH, "--json", "--list-resent").output)
    assert sorted(data["resent"]) == sorted(unconfirmed)
