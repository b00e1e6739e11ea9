"""The author's commands: start (``new``), ``build``, ``check`` and ``preview`` an issue."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import click

from newsletter.checks import check_rendered, merge_findings
from newsletter.cli import Project, pass_project
from newsletter.cli.types import ISSUE, ISSUE_HELP
from newsletter.codes import CODES
from newsletter.config import Settings
from newsletter.doi.compare import check_issue_dois
from newsletter.doi.store import FOLDER, MetadataStore
from newsletter.errors import RenderError
from newsletter.issues import (
    MAX_ARTICLES,
    lint_issue,
    load_topics,
    parse_doi,
    read_issue,
    resolve_issue,
)
from newsletter.issues.common import display, hint
from newsletter.models import Finding, Issue, RenderedIssue
from newsletter.render import render_issue
from newsletter.render.files import email_files, write_folder
from newsletter.values.doi import DoiError
from newsletter.values.month import EXAMPLE, MonthError, parse_month


def _render(settings: Settings, issue: Issue) -> RenderedIssue:
    return render_issue(
        issue,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        lang=settings.site.lang,
    )


def _echo_finding(finding: Finding) -> None:
    click.secho(str(finding), fg="red" if finding.is_error else "yellow", err=True)


def _ignored_codes(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> frozenset[str]:
    """The --ignore codes, each a known warning code; anything else is a usage error (exit 2)."""
    for value in values:
        code = CODES.get(value)
        if code is None:
            raise click.BadParameter(
                f'unknown code "{value}"{hint(value, list(CODES))}; '
                "the codes are listed in docs/issue-format.md",
                ctx,
                param,
            )
        if not code.ignorable:
            raise click.BadParameter(
                f'"{value}" is the code of an error: only warnings can be ignored (an issue '
                "with an error is never built or sent); fix the error instead",
                ctx,
                param,
            )
    return frozenset(values)


ignore_option = click.option(
    "--ignore",
    metavar="CODE",
    multiple=True,
    callback=_ignored_codes,
    help="Do not show warnings of this code (repeatable), e.g. --ignore subject-length.",
)


@click.command(epilog=ISSUE_HELP)
@click.argument("issue", type=ISSUE)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write (replaced whole). Default: build/MONTH/ in the project.",
)
@ignore_option
@pass_project
def build(project: Project, issue: str, out: Path | None, ignore: frozenset[str]) -> None:
    """Render ISSUE into email.html, email.txt, email.mjml and email.eml (a sample reader's copy).

    \b
    Examples:
      newsletter build 2021-01
      newsletter build issues/2021-01.md --out /tmp/2021-01
      newsletter build --ignore subject-length 2020-12
    """
    started = time.perf_counter()
    settings = project.settings
    path = resolve_issue(settings.issues_dir, issue)
    parsed = read_issue(path, load_topics(settings.topics_file))
    for finding in parsed.findings:
        if finding.code not in ignore:
            _echo_finding(finding)
    rendered = _render(settings, parsed)
    files = email_files(rendered, sender=settings.sender, links=settings.links)
    target = out if out is not None else settings.build_dir / parsed.month
    try:
        write_folder(target, files)
    except OSError as err:
        raise RenderError(f"cannot write {display(target)}: {err.strerror or err}") from err
    for name, data in files.items():
        click.echo(f"wrote {display(target / name)} ({len(data) / 1024:.1f} KB)")
    click.echo(f"built {parsed.month} in {time.perf_counter() - started:.2f} s")


@click.command(epilog=ISSUE_HELP)
@click.argument("issues", metavar="ISSUE...", type=ISSUE, nargs=-1, required=True)
@ignore_option
@click.option(
    "--offline",
    is_flag=True,
    help="Compare with the stored DOI records only (issues/.metadata/); fetch none.",
)
@pass_project
@click.pass_context
def check(
    ctx: click.Context,
    project: Project,
    issues: tuple[str, ...],
    ignore: frozenset[str],
    offline: bool,
) -> None:
    """Check ISSUE files, the emails they render to and their DOIs; exit 1 when there is an error.

    Each article is compared with its DOI's record in issues/.metadata/; a DOI without one is
    fetched from Crossref and stored (not with --offline).

    \b
    Examples:
      newsletter check 2021-01
      newsletter check --ignore subject-length 2020-11 2020-12
      newsletter check --offline issues/*.md
    """
    settings = project.settings
    paths = [resolve_issue(settings.issues_dir, issue) for issue in issues]
    topics = load_topics(settings.topics_file)
    errors = warnings = ignored = 0
    for path in paths:
        findings = issue_findings(settings, path, topics, online=not offline)
        shown = [finding for finding in findings if finding.code not in ignore]
        for finding in shown:
            click.secho(str(finding), fg="red" if finding.is_error else "yellow")
        errors += sum(finding.is_error for finding in shown)
        warnings += sum(not finding.is_error for finding in shown)
        ignored += len(findings) - len(shown)
    click.secho(
        _summary(len(paths), errors, warnings, ignored), fg="red" if errors else "green", bold=True
    )
    ctx.exit(1 if errors else 0)


def _summary(files: int, errors: int, warnings: int, ignored: int) -> str:
    """``2 files checked: 1 error, 0 warnings`` (and how many were ignored, if any)."""
    summary = f"{_count(files, 'file')} checked: {_count(errors, 'error')}, "
    summary += _count(warnings, "warning")
    return summary + (f" ({ignored} ignored)" if ignored else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def issue_findings(
    settings: Settings, path: Path, topics: tuple[str, ...], *, online: bool = False
) -> list[Finding]:
    """The file's own findings, the rendered email's (without repeats), then its DOIs'."""
    shown = display(path)
    issue, findings = lint_issue(path, topics, display_path=shown)
    if issue is None:
        return list(findings)
    merged = merge_findings(findings, check_rendered(_render(settings, issue), path=shown))
    client = None
    if online:
        from newsletter.doi.client import Client  # urllib.request only when it may be used

        client = Client.from_env(settings.sender.email)
    dois = check_issue_dois(issue, MetadataStore.beside(path), path=shown, client=client)
    return merged + dois.findings


@click.command(epilog=ISSUE_HELP)
@click.argument("issue", type=ISSUE)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@pass_project
def preview(project: Project, issue: str, port: int) -> None:
    """Serve a live preview of ISSUE on 127.0.0.1: desktop and phone widths, text, checks.

    \b
    Examples:
      newsletter preview 2021-01
      newsletter preview issues/2021-01.md --port 8030
    """
    from newsletter.web.preview import PreviewServer, PreviewSource

    settings = project.settings
    path = resolve_issue(settings.issues_dir, issue)
    source = PreviewSource(
        issue_path=path,
        topics_file=settings.topics_file,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        display_path=display(path),
        lang=settings.site.lang,
    )
    try:
        server = PreviewServer(source, port=port)
    except OSError as err:
        raise click.BadParameter(f"cannot listen on 127.0.0.1:{port}: {err.strerror}") from err
    click.echo(f"previewing {display(path)} at {server.url} (updates on every save; Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.close()


def _month_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_month(value)
    except MonthError as err:
        detail = str(err).partition(": ")[2] if re.fullmatch(r"\d{4}-\d{2}", value) else ""
        problem = f"{value!r} is not a month: use YYYY-MM, e.g. {EXAMPLE}"
        raise click.BadParameter(problem + (f" ({detail})" if detail else ""), ctx, param) from None
    return value


def _doi_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    dois: list[str] = []
    for value in values:
        try:
            doi = parse_doi(value)
        except DoiError as err:
            raise click.BadParameter(str(err), ctx, param) from None
        if doi.lower() not in (known.lower() for known in dois):
            dois.append(doi)
    if len(dois) > MAX_ARTICLES:
        raise click.BadParameter(f"an issue has at most {MAX_ARTICLES} articles", ctx, param)
    return dois


@click.command()
@click.argument("month", callback=_month_argument)
@click.option(
    "--doi",
    "dois",
    metavar="DOI",
    multiple=True,
    callback=_doi_options,
    help="An article to write about (repeatable): its title and citation come from Crossref.",
)
@click.option(
    "--offline", is_flag=True, help="Use only the stored DOI records (issues/.metadata/)."
)
@pass_project
def new(project: Project, month: str, dois: list[str], offline: bool) -> None:
    """Write a draft issue issues/MONTH.md: front matter and one article skeleton per DOI.

    What is left to write is marked [TODO: …]; `newsletter check MONTH` lists each one (a
    warning in a draft, an error once the status is ready). An existing file is never replaced.

    \b
    Examples:
      newsletter new 2021-03
      newsletter new 2021-03 --doi 10.1037/pst0000165 --doi 10.1002/cpp.2509
    """
    from newsletter.doi.client import Client
    from newsletter.issues.draft import draft_text, look_up, refuse_existing, write_new
    from newsletter.monthly import format_duration

    settings = project.settings
    path = settings.issues_dir / f"{month}.md"
    refuse_existing(path)  # before any lookup: nothing is fetched for a file never written
    store = MetadataStore(settings.issues_dir / FOLDER)
    client = None if offline else Client.from_env(settings.sender.email)
    skeletons = [look_up(doi, store, client) for doi in dois]
    text = draft_text(
        month,
        newsletter=settings.sender.name,
        sends_at=_send_time(settings, month),
        waits=format_duration(settings.send.wait_for_ready),
        articles=skeletons,
    )
    write_new(path, text)
    for skeleton in skeletons:
        if skeleton.record is None:
            click.secho(
                f"warning: {skeleton.doi}: {skeleton.problem}; its skeleton has the DOI only "
                f"(`newsletter cite --article {skeleton.doi}` prints title and citation later)",
                fg="yellow",
                err=True,
            )
    found = sum(skeleton.record is not None for skeleton in skeletons)
    click.echo(
        f"wrote {display(path)}: {_count(len(skeletons), 'article')} ({found} from Crossref); "
        f"fill in each [TODO: …], then `newsletter check {month}`"
    )


def _send_time(settings: Settings, month: str) -> datetime | None:
    """When ``schedule.yaml`` sends ``month``'s issue: its first send time in that month."""
    from newsletter.schedule import month_of, next_fire_times  # APScheduler only for `new`

    year, number = parse_month(month)
    start = datetime(year, number, 1, tzinfo=settings.timezone) - timedelta(microseconds=1)
    times = next_fire_times(settings, 1, start)
    return times[0] if times and month_of(times[0]) == month else None


COMMANDS: list[click.Command] = [new, build, check, preview]
