"""``newsletter subscribers …``: add, remove, import, export, list, show and count subscribers.

``sync`` (the transport's suppression lists) lives in ``newsletter.cli.sync``, added on load.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsletter.cli import Project, SuggestingGroup, pass_project
from newsletter.errors import InvalidNameError, OptionValueError, SubscriberError
from newsletter.models import SubscriberStatus, TopicMode
from newsletter.store.csv_io import (
    TOPIC_SEPARATOR,
    ImportReport,
    Outcome,
    ProgressCallback,
    export_csv,
    import_csv,
)
from newsletter.store.subscribers import SubscriberStore, canonical_topics
from newsletter.values.address import AddressError, normalise_address

NEW_STATUSES = click.Choice(
    [SubscriberStatus.ACTIVE.value, SubscriberStatus.PENDING.value], case_sensitive=False
)
ANY_STATUS = click.Choice([status.value for status in SubscriberStatus], case_sensitive=False)


def _store(project: Project) -> SubscriberStore:
    return project.database.subscribers


@click.group("subscribers", cls=SuggestingGroup)
def subscribers() -> None:
    """Manage the subscriber list: add, remove, import, export, list, show, stats, and sync with
    the transport's suppression lists.

    \b
    Examples:
      newsletter subscribers add ana@example.org --name 'Ana Silva'
      newsletter subscribers import people.csv --dry-run
      newsletter subscribers sync
    """


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="The person's name, as it should appear in the To: line.")
@click.option(
    "--status",
    type=NEW_STATUSES,
    default="active",
    show_default=True,
    help="pending: they still have to confirm by the emailed link.",
)
@click.option(
    "--topics",
    default="",
    metavar="'TOPIC; TOPIC'",
    help="Topics they follow, separated by ';' (names from issues/topics.yaml, any case).",
)
@click.option(
    "--only-my-topics",
    is_flag=True,
    help="Send them only the articles on their topics (and no email in a month without any).",
)
@pass_project
def add(
    project: Project,
    email: str,
    name: str | None,
    status: str,
    topics: str,
    only_my_topics: bool,
) -> None:
    """Add one person (consent recorded as given on the command line).

    \b
    Examples:
      newsletter subscribers add ana@example.org --name 'Ana Silva'
      newsletter subscribers add ben@example.org --status pending
      newsletter subscribers add chloe@example.org --topics 'Attachment; Anxiety Disorders' --only-my-topics
    """
    try:
        normalise_address(email)
    except AddressError as err:
        raise OptionValueError(str(err)) from None
    try:
        chosen = canonical_topics(topics.split(TOPIC_SEPARATOR), _known_topics(project))
    except SubscriberError as err:
        raise OptionValueError(f"--topics: {err}") from err
    if only_my_topics and not chosen:
        raise click.UsageError("--only-my-topics needs --topics (a reader of no topics gets all)")
    try:
        subscriber = _store(project).add(
            email,
            name=name,
            status=SubscriberStatus(status),
            source="cli",
            topics=chosen,
            topic_mode=TopicMode.ONLY if only_my_topics else TopicMode.ALL,
        )
    except InvalidNameError as err:
        raise OptionValueError(f"--name: {err.problem}") from err
    shown = f"; topics: {'; '.join(chosen)} ({subscriber.topic_mode})" if chosen else ""
    click.echo(f"added {subscriber.email} ({subscriber.status}{shown})")


@subscribers.command("remove")
@click.argument("email")
@click.option(
    "--forget",
    is_flag=True,
    help="Also erase their personal data; a one-way hash keeps the address suppressed.",
)
@click.option(
    "--reason",
    default="removed on the command line",
    show_default=True,
    help="Why, for the history.",
)
@pass_project
def remove(project: Project, email: str, forget: bool, reason: str) -> None:
    """Unsubscribe a person; the record stays, so no later import brings them back.

    \b
    Examples:
      newsletter subscribers remove ana@example.org
      newsletter subscribers remove ana@example.org --reason 'asked by email'
      newsletter subscribers remove ana@example.org --forget
    """
    store = _store(project)
    if forget:
        if store.get(email) is None and store.forgotten_at(email) is not None:
            click.echo(f"{email.strip()} was forgotten already")
        elif store.forget(email, source="cli"):
            click.echo(f"erased {email.strip()}; the address stays suppressed")
        return
    if store.unsubscribe(email, reason=reason, source="cli"):
        click.echo(f"unsubscribed {email.strip()}")
    else:
        found = store.get(email)
        click.echo(f"{email.strip()} is {found.status if found else 'suppressed'} already")


@contextlib.contextmanager
def _progress(console: Console, label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on a terminal; plain log lines otherwise."""
    if not console.is_terminal:
        click.echo(f"{label} …", err=True)
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _print_report(report: ImportReport, shown_path: str) -> None:
    """Each invalid or repeated row as ``FILE:LINE: …`` on standard error, in file order."""
    for row in sorted([*report.invalid, *report.repeated], key=lambda row: row.line):
        if row.repeats is not None:
            click.echo(f"{shown_path}:{row.line}: {row.reason}: {row.email}", err=True)
        else:
            click.echo(f"{shown_path}:{row.line}: {row.reason}", err=True)
    prefix = "dry run, nothing written: " if report.dry_run else ""
    click.echo(f"{shown_path}: {prefix}{report.summary()}")


@subscribers.command("import")
@click.argument(
    "file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--status",
    type=NEW_STATUSES,
    default="active",
    show_default=True,
    help="Status of the people added (pending: they must confirm first).",
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
@click.option("--strict", is_flag=True, help="Write nothing (and exit 1) if any row is invalid.")
@pass_project
def import_(project: Project, file: Path, status: str, dry_run: bool, strict: bool) -> None:
    """Import people from FILE.csv (header with `email`, optionally `name`).

    \b
    Examples:
      newsletter subscribers import people.csv --dry-run
      newsletter subscribers import people.csv --status pending
      newsletter subscribers import people.csv --strict
    """
    store = _store(project)
    console = Console(stderr=True)
    with _progress(console, f"importing {file}") as progress:
        report = import_csv(
            store,
            file,
            status=SubscriberStatus(status),
            dry_run=dry_run,
            strict=strict,
            known_topics=_known_topics(project),
            progress=progress,
        )
    _print_report(report, str(file))
    invalid = report.counts[Outcome.INVALID]
    if strict and invalid:
        raise SubscriberError(f"{file}: {invalid} invalid row(s); nothing was imported (--strict)")


def _known_topics(project: Project) -> tuple[str, ...] | None:
    """The topic vocabulary, when the project has one (a list may be kept without issues)."""
    topics_file = project.settings.topics_file
    if not topics_file.exists():
        return None
    from newsletter.issues import load_topics  # the issue parser only for commands that take topics

    return load_topics(topics_file)


@subscribers.command("export")
@click.argument(
    "file", metavar="[FILE.csv]", required=False, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--status", type=ANY_STATUS, help="Only people in this status.")
@click.option(
    "--excel",
    is_flag=True,
    help="For Excel: UTF-8 with a byte order mark (accents intact) and CRLF line ends.",
)
@pass_project
def export(project: Project, file: Path | None, status: str | None, excel: bool) -> None:
    """Write the list as CSV to FILE.csv (replaced atomically), or to standard output.

    \b
    Examples:
      newsletter subscribers export backup.csv
      newsletter subscribers export --excel --status active active.csv
      newsletter subscribers export --status unsubscribed > gone.csv
    """
    store = _store(project)
    only = SubscriberStatus(status) if status else None
    if file is None:
        if not excel:
            export_csv(store, sys.stdout, status=only)
            return
        # The mark must be UTF-8's bytes whatever the terminal's encoding is.
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        export_csv(store, out, status=only, excel=True)
        out.flush()
        out.detach()
        return
    count = _export_to_file(store, file, only, excel=excel)
    click.echo(f"exported {count} subscriber(s) to {file}", err=True)


def _export_to_file(
    store: SubscriberStore, file: Path, status: SubscriberStatus | None, *, excel: bool
) -> int:
    """Write to a temporary file beside ``file`` and rename it into place: never half-written."""
    folder = file.resolve().parent
    if not folder.is_dir():
        raise SubscriberError(f"{file}: the folder {folder} does not exist")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise SubscriberError(f"{file}: cannot write in {folder}: {err.strerror or err}") from err
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            count = export_csv(store, handle, status=status, excel=excel)
        os.replace(temporary, file)
    except OSError as err:
        Path(temporary).unlink(missing_ok=True)
        raise SubscriberError(f"{file}: cannot write: {err.strerror or err}") from err
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


@subscribers.command("list")
@click.option("--status", type=ANY_STATUS, help="Only people in this status.")
@pass_project
def list_(project: Project, status: str | None) -> None:
    """List subscribers: address, status, name (one per line, oldest first).

    \b
    Examples:
      newsletter subscribers list
      newsletter subscribers list --status pending
    """
    only = SubscriberStatus(status) if status else None
    for subscriber in _store(project).iter_all(only):
        click.echo(f"{subscriber.email}\t{subscriber.status}\t{subscriber.name or ''}")


@subscribers.command("show")
@click.argument("email")
@pass_project
def show(project: Project, email: str) -> None:
    """Show one subscriber: consent record and the history of every change.

    \b
    Examples:
      newsletter subscribers show ana@example.org
      newsletter --project ~/pprnet subscribers show ana@example.org
    """
    store = _store(project)
    record = store.record(email)
    if record is None:
        forgotten = store.forgotten_at(email)
        if forgotten is not None:
            click.echo(f"{email.strip()}: forgotten on {forgotten:%Y-%m-%d}; stays suppressed")
            return
        raise SubscriberError(f"{email.strip()} is not on the list")
    person = record.subscriber
    joined = person.subscribed_at
    lines = [
        f"email:      {person.email}",
        f"name:       {person.name or ''}",
        f"status:     {person.status}",
        f"topics:     {'; '.join(person.topics) or 'none (gets every article)'}",
        f"reads:      {_mode_text(person.topic_mode) if person.topics else 'every article'}",
        f"joined:     {joined:%Y-%m-%d %H:%M} UTC via {record.source}"
        + (f" ({record.source_detail})" if record.source_detail else "")
        + (f" from {record.source_ip}" if record.source_ip else "")
        if joined
        else "joined:     unknown",
    ]
    if person.confirmed_at:
        lines.append(
            f"confirmed:  {person.confirmed_at:%Y-%m-%d %H:%M} UTC"
            + (f" from {record.confirmed_ip}" if record.confirmed_ip else "")
        )
    lines.append("history:")
    for event in store.events(person.id):
        change = f"{event.from_status or '-'} → {event.to_status}" if event.to_status else ""
        lines.append(
            f"  {event.at:%Y-%m-%d %H:%M}  {event.kind:<12} {change:<24} "
            f"{event.reason} [{event.source}]".rstrip()
        )
    click.echo("\n".join(lines))


def _mode_text(mode: TopicMode) -> str:
    if mode is TopicMode.ONLY:
        return "only (only articles on their topics; no email in a month without any)"
    return "all (every article, theirs first and marked)"


@subscribers.command("stats")
@pass_project
def stats(project: Project) -> None:
    """Count subscribers by status.

    \b
    Examples:
      newsletter subscribers stats
      newsletter --project ~/pprnet subscribers stats
    """
    store = _store(project)
    counts = store.counts_by_status()
    width = max(len(status.value) for status in counts)
    for status, count in counts.items():
        click.echo(f"{status.value:<{width}}  {count}")
    click.echo(f"{'total':<{width}}  {sum(counts.values())}")
    forgotten = store.count_forgotten()
    if forgotten:
        click.echo(f"(of which {forgotten} forgotten: only a hash of the address is kept)")
    topics = store.topic_stats()
    active = counts.get(SubscriberStatus.ACTIVE, 0)
    click.echo("")
    click.echo(
        f"active readers with topics: {topics.with_topics} of {active}; "
        f"reading only their topics: {topics.only}"
    )
    if topics.followers:
        width = max(len(topic) for topic, _ in topics.followers)
        click.echo("followers per topic (active readers):")
        for topic, count in topics.followers:
            click.echo(f"  {topic:<{width}}  {count}")


COMMANDS: list[click.Command] = [subscribers]
