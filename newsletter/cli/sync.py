"""``newsletter subscribers sync``: pull SendGrid's suppression lists into the subscriber list."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from newsletter.cli import Project, pass_project
from newsletter.suppressions import PAGE_SIZE, SyncReport, sync_suppressions

ProgressCallback = Callable[[str, int], None]


@click.command("sync")
@pass_project
def sync(project: Project) -> None:
    """Pull SendGrid's unsubscribes, bounces, spam reports and invalid emails into the list."""
    with _progress() as progress:
        report = sync_suppressions(
            project.settings, project.database.subscribers, progress=progress
        )
    _print(report)


@contextmanager
def _progress() -> Iterator[ProgressCallback]:
    """A live counter on a terminal; a plain line per page otherwise."""
    if not sys.stderr.isatty():

        def plain(name: str, fetched: int) -> None:
            if fetched % PAGE_SIZE == 0:
                click.echo(f"{name}: {fetched} fetched …", err=True)

        yield plain
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("SendGrid suppressions", total=None)

        def live(name: str, fetched: int) -> None:
            bar.update(task, description=f"SendGrid {name}: {fetched} fetched")

        yield live


def _print(report: SyncReport) -> None:
    table = Table("SendGrid list", "fetched", "suppressed now", "already", "not on the list")
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
