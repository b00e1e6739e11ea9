"""``newsletter schedule`` (the next send times, the issues ahead) and ``newsletter scheduler`` (run them)."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC, datetime, timedelta

import click
from rich import box
from rich.console import Console
from rich.table import Table

from newsletter.cli import Project, pass_project
from newsletter.cli.signals import stop_on_signals
from newsletter.cli.types import MOMENT
from newsletter.config import Settings, parse_duration
from newsletter.monthly import Outcome, format_duration
from newsletter.schedule import (
    DEFAULT_RECHECK,
    IssueAhead,
    issue_status,
    issues_ahead,
    month_of,
    next_fire_times,
    run_once,
    run_scheduler,
)
from newsletter.store.database import Database
from newsletter.store.engine import missing_sqlite_file

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FAILED_OUTCOMES = (Outcome.FAILED, Outcome.GAVE_UP, Outcome.MISSED)


@click.command("schedule")
@click.option(
    "--next",
    "count",
    type=click.IntRange(1, 240),
    default=6,
    show_default=True,
    help="How many send times to list.",
)
@click.option(
    "--after",
    type=MOMENT,
    metavar="DATETIME",
    help="Start from this local date/time or month instead of now, e.g. 2027-03-01 or 2027-03.",
)
@pass_project
def schedule(project: Project, count: int, after: datetime | None) -> None:
    """List the next send times (local and UTC), the issue each sends, and whether it is ready.

    Then the work ahead: every issue file from this month on that is not sent yet, with its
    status and the send time it will get.

    \b
    Examples:
      newsletter schedule
      newsletter schedule --next 12
      newsletter schedule --after 2027-03
    """
    settings = project.settings
    start = _local(after, settings) if after else datetime.now(settings.timezone)
    times = next_fire_times(settings, count, start)
    database = _database_if_any(project)
    terminal = sys.stdout.isatty()
    console = Console(highlight=False, width=None if terminal else 120)
    console.print(_rule_line(settings))
    statuses: dict[str, str] = {}
    console.print(_table(settings, database, times, statuses))
    ahead = issues_ahead(settings, database, month_of(start), known=statuses)
    console.print(_ahead_title(ahead, month_of(start)))
    if ahead:
        console.print(_ahead_table(settings, ahead, start))


def _database_if_any(project: Project) -> Database | None:
    """The project's database, or None when it is a SQLite file not created yet (nothing sent)."""
    if missing_sqlite_file(project.settings.database_url):
        return None
    return project.database


def _ahead_title(ahead: list[IssueAhead], since: str) -> str:
    if not ahead:
        return f"Issues ahead: no issue file from {since} on is waiting to be sent."
    return f"Issues ahead: {len(ahead)} issue file(s) from {since} on, not sent yet:"


def _ahead_table(settings: Settings, ahead: list[IssueAhead], start: datetime) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False)
    table.add_column("Issue", no_wrap=True)
    table.add_column("Status")
    table.add_column(f"Sends at (local, {settings.timezone.key})", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    for item in ahead:
        send_at = item.send_at
        if send_at is None:
            local, utc = "no send time that month", ""
        else:
            local = send_at.strftime("%Y-%m-%d %H:%M %Z")
            utc = send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            if send_at <= start:
                local += " (passed)"
        table.add_row(f"issues/{item.month}.md", item.status, local, utc)
    return table


def _rule_line(settings: Settings) -> str:
    rule = settings.send
    when = f"cron {rule.cron!r}" if rule.cron else f"day {rule.day!r} at {rule.time:%H:%M}"
    return (
        f"Sends on {when} ({settings.timezone.key}); "
        f"misfire_grace {format_duration(rule.misfire_grace)}, "
        f"wait_for_ready {format_duration(rule.wait_for_ready)}"
    )


def _table(
    settings: Settings,
    database: Database | None,
    times: list[datetime],
    statuses: dict[str, str],
) -> Table:
    """The next send times; ``statuses`` gets each month's status (the issues ahead reuse them)."""
    table = Table(box=box.SIMPLE, show_edge=False)
    table.add_column(f"Local ({settings.timezone.key})", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("Issue", no_wrap=True)
    table.add_column("Status")
    for fire in times:
        month = month_of(fire)
        if month not in statuses:
            statuses[month] = issue_status(settings, database, month)
        table.add_row(
            fire.strftime("%Y-%m-%d %H:%M %Z"),
            fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            f"issues/{month}.md",
            statuses[month],
        )
    return table


@click.command("scheduler")
@click.option(
    "--once",
    is_flag=True,
    help="Do what is due now (send, or look again at a waiting issue), then exit: for cron "
    "or a systemd timer.",
)
@click.option(
    "--recheck-every",
    default=f"{int(DEFAULT_RECHECK.total_seconds() // 60)}m",
    show_default=True,
    metavar="DURATION",
    help='How often a month whose issue is not ready yet is looked at again ("5m", "30s").',
)
@click.option(
    "--fire-at",
    type=MOMENT,
    metavar="DATETIME",
    help="Also send once at this local time, e.g. 2026-11-26T14:05 (to try a deployment).",
)
@pass_project
def scheduler(project: Project, once: bool, recheck_every: str, fire_at: datetime | None) -> None:
    """Run in the foreground and send each month's issue at its send time (SIGTERM stops it).

    \b
    Examples:
      newsletter scheduler
      newsletter scheduler --once
      newsletter scheduler --fire-at 2026-11-26T14:05 --recheck-every 1m
    """
    settings = project.settings
    recheck = _duration(recheck_every, "--recheck-every")
    extra = _local(fire_at, settings) if fire_at else None
    _configure_logging()
    with stop_on_signals(_log_signal) as stop:
        if not once:
            run_scheduler(
                settings, project.database, stop=stop, recheck_every=recheck, fire_at=extra
            )
            return
        now = datetime.now(settings.timezone)
        decision = run_once(settings, project.database, now=now, stop=stop)
    if decision is None:
        logging.getLogger("newsletter.schedule").info("nothing is due now")
    elif decision.outcome in FAILED_OUTCOMES:
        sys.exit(1)


class _DecisionLog(logging.StreamHandler):  # type: ignore[type-arg]
    """Timestamped log lines on standard error: the scheduler's record of what it decided."""


def _configure_logging() -> None:
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _DecisionLog)), None)
    if handler is None:
        handler = _DecisionLog(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    else:
        handler.setStream(sys.stderr)  # a second call in one process (tests) may have a new stderr
    root.setLevel(logging.INFO)


def _log_signal(sig: signal.Signals) -> None:
    logging.getLogger("newsletter.schedule").info("%s received; stopping", sig.name)


def _duration(text: str, option: str) -> timedelta:
    try:
        duration = parse_duration(text)
    except ValueError:
        duration = timedelta(0)
    if duration <= timedelta(0):
        raise click.BadParameter(
            f'expected a duration such as "5m" or "30s", got {text!r}', param_hint=option
        )
    return duration


def _local(moment: datetime, settings: Settings) -> datetime:
    """``moment`` in the newsletter's time zone when it gave none of its own."""
    return moment.replace(tzinfo=settings.timezone) if moment.tzinfo is None else moment


COMMANDS: list[click.Command] = [schedule, scheduler]
