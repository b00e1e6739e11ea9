"""``newsletter send`` (one issue to the list, or test copies) and ``newsletter report``."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from newsletter.cli import Project, pass_project
from newsletter.cli.signals import stop_on_signals
from newsletter.cli.types import ISSUE, ISSUE_HELP
from newsletter.config import Settings
from newsletter.delivery.registry import names as transport_names
from newsletter.doi.compare import check_issue_dois
from newsletter.doi.store import MetadataStore
from newsletter.errors import AlreadySentError, IssueError
from newsletter.issues import load_topics, read_issue, resolve_issue
from newsletter.issues.common import display
from newsletter.models import Issue, IssueStatus, LedgerStatus
from newsletter.send import (
    Progress,
    RunStatus,
    SendPlan,
    SendSummary,
    plan_send,
    send_issue,
    send_test,
)
from newsletter.store.database import Database
from newsletter.store.ledger import SendStatus, refusal
from newsletter.values.address import AddressError, normalise_address
from newsletter.variants import SKIP, Variants

LOG_EVERY_SECONDS = 5.0


# --- progress on a terminal, or as log lines --------------------------------------------------


class BarProgress(Progress):
    """A rich progress bar: count, rate, time left."""

    def __init__(self) -> None:
        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task: Any = None
        self.started = time.monotonic()
        self.done = 0

    def start(self, total: int, *, issue: str, transport: str) -> None:
        self.started = time.monotonic()
        self.bar.start()
        self.task = self.bar.add_task(f"{issue} via {transport}", total=total, rate="")

    def advance(self, sent: int, failed: int) -> None:
        self.done += sent + failed
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        self.bar.update(self.task, advance=sent + failed, rate=f"{rate:,.0f}/s")

    def skip(self, count: int) -> None:
        self.bar.update(self.task, advance=count)

    def finish(self, summary: SendSummary) -> None:
        self.bar.stop()


class LogProgress(Progress):
    """Plain lines every few seconds, for logs and pipes."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.last = self.started
        self.issue = ""

    def start(self, total: int, *, issue: str, transport: str) -> None:
        self.total, self.issue = total, issue
        self.started = self.last = time.monotonic()
        click.echo(f"{issue}: sending to {total:,} recipient(s) via {transport}", err=True)

    def skip(self, count: int) -> None:
        self.total -= count  # readers with none of their topics this month: not sent

    def advance(self, sent: int, failed: int) -> None:
        self.done += sent + failed
        now = time.monotonic()
        if now - self.last < LOG_EVERY_SECONDS and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        left = max(self.total - self.done, 0) / rate if rate else 0.0
        click.echo(
            f"{self.issue}: {self.done:,}/{self.total:,} ({rate:,.0f}/s, about {left:,.0f} s left)",
            err=True,
        )


def _announce_stop(_sig: signal.Signals) -> None:
    click.echo("\nstopping after the current batch (Ctrl-C again to abort at once)", err=True)


# --- newsletter send -----------------------------------------------------------------------


def _load(settings: Settings, ref: str) -> Issue:
    path = resolve_issue(settings.issues_dir, ref)
    try:
        issue = read_issue(path, load_topics(settings.topics_file))
    except IssueError as err:
        for finding in err.findings:
            click.secho(str(finding), fg="red" if finding.is_error else "yellow", err=True)
        errors = sum(1 for finding in err.findings if finding.is_error)
        # The findings are printed above; the one-line error says what it means for the send.
        raise IssueError(
            f"{ref}: {errors} error(s) in the issue file; nothing was sent", err.findings
        ) from None
    for finding in issue.findings:
        click.secho(str(finding), fg="yellow", err=True)
    _refuse_retracted(issue, path)
    return issue


def _refuse_retracted(issue: Issue, path: Path) -> None:
    """The stored DOI records' findings (no network); a retracted article refuses the send."""
    dois = check_issue_dois(issue, MetadataStore.beside(path), path=display(path))
    for finding in dois.findings:
        if finding.code != "doi-not-checked":  # `newsletter check` says that one
            click.secho(str(finding), fg="red" if finding.is_error else "yellow", err=True)
    if dois.has_errors:
        errors = [finding for finding in dois.findings if finding.is_error]
        raise IssueError(
            f"{display(path)}: {len(errors)} retracted article(s); nothing was sent", errors
        )


def _refuse_placeholders(ref: str, issue: Issue) -> None:
    """A draft may hold `[TODO: …]` placeholders (warnings while writing); none reaches readers.

    A test copy (--test-to) of such a draft is fine: it goes to the author.
    """
    left = [finding for finding in issue.findings if finding.code == "placeholder"]
    if left:
        raise IssueError(
            f"{ref}: {len(left)} [TODO: …] placeholder(s) still to be written (listed above); "
            "nothing was sent",
            left,
        )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def _confirm(plan: SendPlan, issue: Issue, yes: bool) -> None:
    """Show what is about to happen; ask unless --yes; refuse without a terminal."""
    click.echo(f"Issue:      {plan.issue}  ({issue.status})")
    click.echo(f"Subject:    {plan.subject}")
    click.echo(f"Transport:  {plan.transport}")
    click.echo(f"Recipients: {plan.recipients:,}")
    if issue.status is IssueStatus.DRAFT:
        click.secho(
            f"warning: {plan.issue} is a draft (status: draft in its front matter); "
            "the scheduler would not send it",
            fg="yellow",
            err=True,
        )
    if yes:
        return
    if not sys.stdin.isatty():
        click.secho(
            "error: no terminal to ask for confirmation; add --yes to send without asking",
            fg="red",
            err=True,
        )
        sys.exit(2)
    question = "Send this draft now?" if issue.status is IssueStatus.DRAFT else "Send it now?"
    click.confirm(question, abort=True)


def _print_summary(summary: SendSummary) -> None:
    totals = summary.totals
    click.echo(
        f"{summary.issue}: {summary.status}: sent {summary.sent:,}, failed {summary.failed:,} "
        f"in {summary.seconds:,.{1 if summary.seconds >= 1 else 2}f} s ({summary.rate:,.0f}/s); "
        "the whole send: "
        f"{totals.get(LedgerStatus.SENT, 0):,} sent, {totals.get(LedgerStatus.FAILED, 0):,} "
        f"failed, {totals.get(LedgerStatus.UNCONFIRMED, 0):,} unconfirmed"
        + (
            f", {totals.get(LedgerStatus.SKIPPED, 0):,} skipped (none of their topics)"
            if totals.get(LedgerStatus.SKIPPED)
            else ""
        )
    )
    if summary.found_unconfirmed:
        click.secho(
            f"{summary.found_unconfirmed} recipient(s) were in flight when an earlier run stopped "
            "and may or may not have received it: they are unconfirmed",
            fg="yellow",
            err=True,
        )
    if summary.unconfirmed:
        click.echo(
            f"`newsletter report {summary.issue}` lists the unconfirmed; "
            f"`newsletter send {summary.issue} --resume --resend-unconfirmed` sends them again",
            err=True,
        )


class _Reporting(Progress):
    """Forwards to the bar or the log lines, and prints the summary at the end."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner

    def start(self, total: int, *, issue: str, transport: str) -> None:
        self.inner.start(total, issue=issue, transport=transport)

    def advance(self, sent: int, failed: int) -> None:
        self.inner.advance(sent, failed)

    def skip(self, count: int) -> None:
        self.inner.skip(count)

    def finish(self, summary: SendSummary) -> None:
        self.inner.finish(summary)
        _print_summary(summary)


def _test_addresses(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """The --test-to addresses as given; one that is no email address is a usage error (exit 2)."""
    for value in values:
        try:
            normalise_address(value)
        except AddressError as err:
            raise click.BadParameter(str(err), ctx, param) from None
    return values


@click.command("send", epilog=ISSUE_HELP)
@click.argument("issue", type=ISSUE)
@click.option("--yes", "-y", is_flag=True, help="Send without asking (required with no terminal).")
@click.option("--dry-run", is_flag=True, help="Render and count the recipients; send nothing.")
@click.option(
    "--test-to",
    "test_to",
    multiple=True,
    metavar="EMAIL",
    callback=_test_addresses,
    help="Send one [TEST] copy to EMAIL instead (repeatable); not recorded as the issue's send.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted send of ISSUE.")
@click.option(
    "--resend-unconfirmed",
    is_flag=True,
    help="With --resume: also resend to those whose batch was in flight when a run died.",
)
@click.option(
    "--transport",
    type=click.Choice(transport_names()),
    default=None,
    help="Override delivery.transport from schedule.yaml.",
)
@pass_project
def send(
    project: Project,
    issue: str,
    yes: bool,
    dry_run: bool,
    test_to: tuple[str, ...],
    resume: bool,
    resend_unconfirmed: bool,
    transport: str | None,
) -> None:
    """Send ISSUE to every active subscriber (once: a sent issue is never sent again).

    \b
    Examples:
      newsletter send 2021-01 --test-to editor@example.org
      newsletter send 2021-01 --dry-run
      newsletter send 2021-01 --resume --yes
    """
    settings = project.settings
    parsed = _load(settings, issue)
    if test_to:
        _send_test_copies(settings, parsed, test_to, transport)
        return
    _refuse_placeholders(issue, parsed)
    database = project.database
    plan = plan_send(
        settings, database, parsed, transport_name=transport, resend_unconfirmed=resend_unconfirmed
    )
    if _already_done(database, plan, resume or resend_unconfirmed):
        return
    _confirm(plan, parsed, yes or dry_run)
    if dry_run:
        summary = send_issue(
            settings, database, parsed, transport_name=transport, dry_run=True, resume=True
        )
        skipped = dict(summary.variants).get(SKIP, 0)
        getting = summary.recipients - skipped
        click.echo(
            f"dry run: {getting:,} recipient(s) would get it"
            + (
                f", {skipped:,} skipped (they read only their topics, none in it)"
                if skipped
                else ""
            )
            + "; nothing sent"
        )
        _print_variants(parsed, summary.variants)
        return
    inner: Progress = BarProgress() if sys.stderr.isatty() else LogProgress()
    with stop_on_signals(_announce_stop) as stop:
        try:
            summary = send_issue(
                settings,
                database,
                parsed,
                transport_name=transport,
                resume=resume,
                resend_unconfirmed=resend_unconfirmed,
                progress=_Reporting(inner),
                stop=stop,
            )
        except AlreadySentError as err:  # another process finished it meanwhile
            click.echo(str(err))
            return
    if summary.status is not RunStatus.COMPLETED:
        click.secho(f"error: {summary.error}", fg="red", err=True)
        sys.exit(1)


def _print_variants(issue: Issue, variants: Sequence[tuple[str, int]]) -> None:
    """The variants a send makes: key, readers, and the articles in the order sent."""
    if not variants:
        return
    known = Variants(issue)
    click.echo(
        f"{len(variants)} variant(s) (articles in the order sent; * on the reader's topics):"
    )
    for key, readers in variants:
        variant = known.variant(key)
        shown = key or "skipped"
        click.echo(f"  {shown:<16} {readers:>10,} reader(s)  {variant.describe(issue)}")


def _already_done(database: Database, plan: SendPlan, resume: bool) -> bool:
    """Print "already sent …" for a finished send and return True; refuse an unfinished one."""
    record = plan.existing
    if record is None:
        return False
    if record.status is SendStatus.COMPLETED and (not resume or plan.recipients == 0):
        counts = database.ledger().counts(record.id)  # only the counts: not the whole report
        reached = counts[LedgerStatus.SENT] + counts[LedgerStatus.UNCONFIRMED]
        click.echo(
            f"{plan.issue} already sent on {_when(record.finished_at or record.started_at)} "
            f"({reached:,} recipients); nothing to do"
        )
        if plan.unconfirmed:
            click.echo(
                f"{plan.unconfirmed} recipient(s) are unconfirmed: `newsletter report "
                f"{plan.issue}` lists them; `newsletter send {plan.issue} --resume "
                "--resend-unconfirmed` sends them again",
                err=True,
            )
        return True
    if not resume and record.status is not SendStatus.COMPLETED:
        raise refusal(record)
    return False


def _send_test_copies(
    settings: Settings, issue: Issue, addresses: tuple[str, ...], transport: str | None
) -> None:
    results = send_test(settings, issue, addresses, transport_name=transport)
    for result in results:
        if result.accepted:
            click.echo(f"test copy sent to {result.recipient.email}")
        else:
            click.secho(f"test copy to {result.recipient.email} refused: {result.error}", fg="red")
    if not all(result.accepted for result in results):
        sys.exit(1)


COMMANDS: list[click.Command] = [send]
