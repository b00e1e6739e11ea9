"""``newsletter report``: the send ledger of one issue. Imports nothing of the sending side."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from newsletter.cli import Project, pass_project
from newsletter.cli.types import ISSUE, ISSUE_HELP
from newsletter.config import Settings
from newsletter.issues import month_of, resolve_issue
from newsletter.models import LedgerStatus
from newsletter.store.send_report import SendReport, send_report
from newsletter.values.month import looks_like_month


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def _month(settings: Settings, ref: str) -> str:
    if looks_like_month(ref):
        return ref
    path = resolve_issue(settings.issues_dir, ref)
    return month_of(Path(path)) or ref


def report_json(report: SendReport, *, list_resent: bool = False) -> dict[str, Any]:
    record = report.record
    found: dict[str, Any] = {
        "issue": record.issue,
        "subject": record.subject,
        "status": str(record.status),
        "transport": record.transport,
        "triggered_by": record.triggered_by,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "counts": {str(status): count for status, count in report.counts.items()},
        "remaining": report.remaining,
        "unconfirmed": [e for e, s, _ in report.problems if s is LedgerStatus.UNCONFIRMED],
        "failed": [
            {"email": e, "error": err} for e, s, err in report.problems if s is LedgerStatus.FAILED
        ],
        "resent_after_unconfirmed": report.resent,
        "variants": dict(report.variants),
    }
    if list_resent:
        found["resent"] = list(report.resent_addresses)
    return found


@click.command("report", epilog=ISSUE_HELP)
@click.argument("issue", type=ISSUE)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--list-resent",
    is_flag=True,
    help="Also list the readers sent it again after being unconfirmed (they may have two copies).",
)
@pass_project
def report(project: Project, issue: str, as_json: bool, list_resent: bool) -> None:
    """The send ledger of ISSUE: counts by status, when, transport, unconfirmed/failed addresses.

    \b
    Examples:
      newsletter report 2021-01
      newsletter report 2021-01 --json
      newsletter report 2021-01 --list-resent
    """
    settings = project.settings
    month = _month(settings, issue)
    result = send_report(project.database, month, list_resent=list_resent)
    if as_json:
        click.echo(json.dumps(report_json(result, list_resent=list_resent), indent=2))
        return
    record = result.record
    click.echo(f"{record.issue}: {record.subject}")
    click.echo(f"status:    {record.status} (started by {record.triggered_by})")
    click.echo(f"transport: {record.transport}")
    click.echo(f"started:   {_when(record.started_at)}")
    click.echo(f"finished:  {_when(record.finished_at) if record.finished_at else '-'}")
    counts = ", ".join(f"{status} {count:,}" for status, count in result.counts.items())
    click.echo(f"counts:    {counts} (total {result.total:,})")
    if result.remaining:
        click.echo(f"not yet sent: {result.remaining:,} active subscriber(s)")
    if result.variants:
        click.echo("variants:  " + ", ".join(f"{k or '-'} {n:,}" for k, n in result.variants))
    if result.resent:
        click.echo(
            f"resent:    {result.resent:,} after being unconfirmed "
            "(they may have two copies; --list-resent lists them)"
        )
    if result.resent_addresses:
        click.echo("resent after being unconfirmed:")
        for email in result.resent_addresses:
            click.echo(f"  {email}")
    for title, status in (
        ("unconfirmed (may or may not have received it)", LedgerStatus.UNCONFIRMED),
        ("failed", LedgerStatus.FAILED),
    ):
        rows = [(e, err) for e, s, err in result.problems if s is status]
        if rows:
            click.echo(f"{title}:")
            for email, error in rows:
                click.echo(f"  {email}" + (f"  ({error})" if status is LedgerStatus.FAILED else ""))


COMMANDS: list[click.Command] = [report]
