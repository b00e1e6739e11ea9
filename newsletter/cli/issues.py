"""The author's commands: ``build``, ``check`` and ``preview`` an issue."""

from __future__ import annotations

import time
from pathlib import Path

import click

from newsletter.checks import check_rendered
from newsletter.cli import Project, pass_project
from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.issues import lint_issue, load_topics, read_issue, resolve_issue
from newsletter.issues.common import display
from newsletter.models import Finding, Issue, RenderedIssue
from newsletter.render import render_issue
from newsletter.render.files import email_files, write_folder

ISSUE_HELP = "ISSUE is a month such as 2021-01 (looked up in issues/) or the path of an issue file."


def _render(settings: Settings, issue: Issue) -> RenderedIssue:
    return render_issue(
        issue,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
    )


def _echo_finding(finding: Finding) -> None:
    click.secho(str(finding), fg="red" if finding.is_error else "yellow", err=True)


@click.command(epilog=ISSUE_HELP)
@click.argument("issue")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write (replaced whole). Default: build/MONTH/ in the project.",
)
@pass_project
def build(project: Project, issue: str, out: Path | None) -> None:
    """Render ISSUE into email.html, email.txt, email.mjml and email.eml (a sample reader's copy)."""
    started = time.perf_counter()
    settings = project.settings
    path = resolve_issue(settings.issues_dir, issue)
    parsed = read_issue(path, load_topics(settings.topics_file))
    for finding in parsed.findings:
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
@click.argument("issues", metavar="ISSUE...", nargs=-1, required=True)
@pass_project
@click.pass_context
def check(ctx: click.Context, project: Project, issues: tuple[str, ...]) -> None:
    """Check ISSUE files and the emails they render to; exit 1 when there is an error."""
    settings = project.settings
    paths = [resolve_issue(settings.issues_dir, issue) for issue in issues]
    topics = load_topics(settings.topics_file)
    errors = warnings = 0
    for path in paths:
        findings = issue_findings(settings, path, topics)
        for finding in findings:
            click.secho(str(finding), fg="red" if finding.is_error else "yellow")
        errors += sum(finding.is_error for finding in findings)
        warnings += sum(not finding.is_error for finding in findings)
    files = f"{len(paths)} file{'s' if len(paths) != 1 else ''}"
    summary = f"{files} checked: {errors} error{'s' if errors != 1 else ''}, "
    summary += f"{warnings} warning{'s' if warnings != 1 else ''}"
    click.secho(summary, fg="red" if errors else "green", bold=True)
    ctx.exit(1 if errors else 0)


def issue_findings(settings: Settings, path: Path, topics: tuple[str, ...]) -> list[Finding]:
    """The file's own findings, then (if it parses) the rendered email's, without repeats."""
    shown = display(path)
    issue, findings = lint_issue(path, topics, display_path=shown)
    result = list(findings)
    if issue is None:
        return result
    reported = {_topic_of(finding) for finding in result} - {None}
    for finding in check_rendered(_render(settings, issue), path=shown):
        if _topic_of(finding) not in reported:  # the file's lint said it already, at its line
            result.append(finding)
    return result


def _topic_of(finding: Finding) -> str | None:
    """Subject and preheader lengths are checked both in the file and in the rendered email."""
    for topic in ("the subject", "the preheader"):
        if finding.message.startswith(topic):
            return topic
    return None


@click.command(epilog=ISSUE_HELP)
@click.argument("issue")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@pass_project
def preview(project: Project, issue: str, port: int) -> None:
    """Serve a live preview of ISSUE on 127.0.0.1: desktop and phone widths, text, checks."""
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
    )
    try:
        server = PreviewServer(source, port=port)
    except OSError as err:
        raise click.BadParameter(f"cannot listen on 127.0.0.1:{port}: {err.strerror}") from err
    click.echo(f"previewing {display(path)} at {server.url} (reloads on save; Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.close()


COMMANDS: list[click.Command] = [build, check, preview]
