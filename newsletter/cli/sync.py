"""``newsletter subscribers sync``: pull the transport's suppression lists into the subscriber list."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from newsletter.cli import Project, pass_project
from newsletter.delivery.hooks import ProgressCallback, SuppressionPull, SyncReport
from newsletter.delivery.registry import Provider, get_provider, names, providers
from newsletter.errors import ConfigError

PLAIN_EVERY = 500  # records between two progress lines when stderr is not a terminal


@click.command("sync")
@click.option(
    "--transport",
    type=click.Choice(names()),
    default=None,
    help="Whose lists to pull; default: delivery.transport from schedule.yaml.",
)
@pass_project
def sync(project: Project, transport: str | None) -> None:
    """Pull the transport's unsubscribes, bounces, spam reports and invalid emails into the list.

    \b
    Examples:
      newsletter subscribers sync
      newsletter subscribers sync --transport sendgrid
    """
    provider = get_provider(transport or project.settings.delivery.transport)
    pull = _pull(provider)
    with _progress(provider.label) as progress:
        report = pull(project.settings, project.database.subscribers, progress=progress)
    _print(report, provider.label)


def _pull(provider: Provider) -> SuppressionPull:
    """The provider's suppression hook; ``ConfigError`` (exit 2) naming those that have one."""
    pull = provider.suppression_pull()
    if pull is not None:
        return pull
    having = [p.name for p in providers() if p.suppressions is not None and p.selectable]
    raise ConfigError(
        f"`subscribers sync` is not available for the {provider.name} transport: it keeps no "
        f"suppression lists (pull those of {' or '.join(having) or 'no transport'} with "
        f"--transport {having[0] if having else 'NAME'})"
    )


@contextmanager
def _progress(title: str) -> Iterator[ProgressCallback]:
    """A live counter on a terminal; a plain line per page otherwise."""
    if not sys.stderr.isatty():

        def plain(name: str, fetched: int) -> None:
            if fetched % PLAIN_EVERY == 0:
                click.echo(f"{name}: {fetched} fetched …", err=True)

        yield plain
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{title} suppressions", total=None)

        def live(name: str, fetched: int) -> None:
            bar.update(task, description=f"{title} {name}: {fetched} fetched")

        yield live


def _print(report: SyncReport, title: str) -> None:
    table = Table(f"{title} list", "fetched", "suppressed now", "already", "not on the list")
    for item in report.lists:
        table.add_row(
            item.name,
            str(item.fetched),
            str(len(item.suppressed)),
            str(item.already),
            str(item.unknown),
        )
    console = Console(highlight=False)
    console.print(table)
    for item in report.lists:
        for email in item.suppressed:
            console.print(f"suppressed {email} ({item.name})", markup=False)
    console.print(f"{report.changed} subscriber(s) suppressed by this sync", markup=False)
