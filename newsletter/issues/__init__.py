"""Read and validate issue files (``issues/YYYY-MM.md``) into frozen ``Issue`` values.

The format is described in ``docs/issue-format.md``. Every problem becomes a ``Finding`` located
to its file line; all findings of a file are collected at once and no input, however broken,
raises anything but the documented errors. The parsing is split by part of the file:
``frontmatter`` (the YAML), ``body`` (headings and Markdown checks), ``article`` (fields, summary,
Practice Implications); ``fields`` declares the front matter keys and article fields once;
``common`` holds topic names and the findings collector; ``placeholders`` finds the ``[TODO: …]``
gaps that ``draft`` (``newsletter new``) leaves in a new issue. Months and DOIs are parsed by the
leaf modules ``newsletter.values.month`` and ``newsletter.values.doi``; finding codes are
registered in ``newsletter.codes``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from newsletter.errors import ConfigError, IssueError, IssueNotFoundError
from newsletter.issues.article import parse_article
from newsletter.issues.body import IMPLICATIONS, Body, Heading, check_section, find_headings
from newsletter.issues.common import (
    Report,
    canonical_topic,
    closest,
    display,
    fold,
    yaml_line,
    yaml_problem,
)
from newsletter.issues.frontmatter import FrontMatter, parse_front_matter, split_front_matter
from newsletter.issues.placeholders import check_placeholders
from newsletter.models import Article, Finding, Issue
from newsletter.values.doi import doi_url, parse_doi
from newsletter.values.month import MonthError, looks_like_month, parse_month

__all__ = [
    "canonical_topic",
    "closest",
    "doi_url",
    "lint_issue",
    "load_topics",
    "month_of",
    "parse_doi",
    "read_issue",
    "resolve_issue",
]

MAX_BYTES = 256 * 1024  # an issue is a few KB; anything this big is the wrong file
MAX_ARTICLES = 5

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def month_of(path: Path) -> str | None:
    """The month "YYYY-MM" a file name such as ``2021-01.md`` gives; None unless a real month."""
    try:
        parse_month(path.stem)
    except MonthError:
        return None
    return path.stem


def resolve_issue(issues_dir: Path, ref: str) -> Path:
    """The file a command's ISSUE argument means: a month (looked up in ``issues_dir``) or a path."""
    if looks_like_month(ref):
        path = issues_dir / f"{ref}.md"
        if not path.is_file():
            raise IssueNotFoundError(f"no issue for {ref}: {display(path)} does not exist")
        return path
    path = Path(ref).expanduser()
    if path.is_dir():
        raise IssueNotFoundError(
            f"{ref} is a folder: give an issue file or a month such as 2021-01"
        )
    if not path.is_file():
        raise IssueNotFoundError(
            f"no issue file {ref}: give a month such as 2021-01 (looked up in "
            f"{display(issues_dir)}/) or the path of an issue file"
        )
    return path


def load_topics(path: Path) -> tuple[str, ...]:
    """The topic vocabulary from ``issues/topics.yaml`` (a YAML list of names)."""
    shown = display(path)
    try:
        source = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ConfigError(f"{shown}: not found; it lists the topics issues may use") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{shown}: cannot be read: {err}") from err
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as err:
        line = yaml_line(err, 1, source.count("\n") + 1)
        raise ConfigError(f"{shown}:{line}: not valid YAML: {yaml_problem(err, 1)}") from err
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        line = node.start_mark.line + 1 if node is not None else 1
        raise ConfigError(f"{shown}:{line}: expected a list of topic names, one `- Name` a line")
    return _topic_names(shown, node)


def _topic_names(shown: str, node: yaml.SequenceNode) -> tuple[str, ...]:
    """Check each entry of the topics list: a unique, non-empty name without ";"."""
    seen: dict[str, int] = {}
    names: list[str] = []
    for item in node.value:
        line = item.start_mark.line + 1
        name = " ".join(item.value.split()) if isinstance(item, yaml.ScalarNode) else ""
        if not name:
            raise ConfigError(f"{shown}:{line}: a topic must be a non-empty name")
        if ";" in name:
            raise ConfigError(f"{shown}:{line}: a topic name cannot hold ';' (it separates topics)")
        if fold(name) in seen:
            first = seen[fold(name)]
            raise ConfigError(
                f'{shown}:{line}: topic "{name}" is listed twice (first on line {first})'
            )
        seen[fold(name)] = line
        names.append(name)
    return tuple(names)


def read_issue(path: Path, topics: Sequence[str]) -> Issue:
    """The valid ``Issue`` in ``path`` (warnings in ``.findings``); IssueError listing every finding."""
    issue, findings = lint_issue(path, topics)
    if issue is None:
        errors = sum(1 for finding in findings if finding.is_error)
        lines = "\n".join(str(finding) for finding in findings)
        plural = "s" if errors != 1 else ""
        raise IssueError(f"{display(path)} has {errors} error{plural}:\n{lines}", findings)
    return issue


def lint_issue(
    path: Path, topics: Sequence[str], *, display_path: str | None = None
) -> tuple[Issue | None, tuple[Finding, ...]]:
    """Every finding of an issue file, and the ``Issue`` itself when there is no error."""
    report = Report(display_path if display_path is not None else display(path))
    month = month_of(path)
    if month is None:
        report.error(
            "file-name",
            1,
            f'the file name "{path.name}" is not a month: name it YYYY-MM.md (2021-01.md)',
        )
    text = _read_source(path, report)
    parsed = _parse(text, topics, report) if text is not None else None
    if parsed is None or month is None or report.has_errors:
        return None, report.result()
    front, intro, articles = parsed
    issue = Issue(
        month=month,
        path=path,
        intro=intro,
        articles=articles,
        findings=report.result(),
        source=text or "",
        **front.values,
    )
    return issue, issue.findings


# --- the file as text ----------------------------------------------------------------------------


def _read_source(path: Path, report: Report) -> str | None:
    """The file's text with "\\n" line ends and no BOM, or None (reported) when it is not text."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        report.error("unreadable", 1, f"cannot read the file: {err.strerror or err}")
        return None
    if len(data) > MAX_BYTES:
        report.error(
            "file-too-large", 1, "the file is larger than 256 KB; an issue is a few KB of Markdown"
        )
        return None
    return _decode(data.removeprefix(codecs.BOM_UTF8), report)


def _decode(data: bytes, report: Report) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start]
        report.error(
            "not-utf8", line, f"the file is not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8"
        )
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    control = _CONTROL_RE.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        code = ord(control.group())
        report.error(
            "control-character",
            line,
            f"the file holds a control character (U+{code:04X}): is it a text file?",
        )
        return None
    if not text.strip():
        report.error(
            "empty-file", 1, "the file is empty: it needs front matter and at least one article"
        )
        return None
    return text


def _parse(
    text: str, topics: Sequence[str], report: Report
) -> tuple[FrontMatter, str, tuple[Article, ...]] | None:
    """Front matter, intro and articles of a decoded file (None when the body cannot be found)."""
    lines = text.split("\n")
    opening, front_lines, body_start = split_front_matter(lines, report)
    front = FrontMatter()
    if front_lines is not None:
        front = parse_front_matter(front_lines, opening, report)
    if body_start is None:
        return None
    body = Body(lines[body_start:], body_start + 1, report)
    intro, articles = _parse_body(body, topics, closing_line=body_start)
    check_placeholders(_content_lines(lines, body), front.values["status"], report)
    return front, intro, articles


def _content_lines(lines: list[str], body: Body) -> list[tuple[int, str]]:
    """The lines an author writes content on: front matter values and the body outside code."""
    front = [
        (index + 1, line)
        for index, line in enumerate(lines[: body.first - 1])
        if not line.lstrip().startswith("#")
    ]
    text = [
        (body.line_no(index), line)
        for index, line in enumerate(body.lines)
        if index not in body.code
    ]
    return front + text


def _parse_body(
    body: Body, topics: Sequence[str], closing_line: int
) -> tuple[str, tuple[Article, ...]]:
    """The intro and every article of the body."""
    headings = find_headings(body)
    starts = [heading for heading in headings if heading.kind == "article"]
    intro_end = starts[0].index if starts else len(body.lines)
    intro = body.text(0, intro_end) if any(line.strip() for line in body.lines[:intro_end]) else ""
    check_section(body, 0, intro_end)
    if not intro.strip():
        body.report.warning(
            "empty-intro",
            closing_line,
            "the intro is empty: a line or two before the first article",
        )
    _check_article_count(body, starts, closing_line)
    ends = [heading.index for heading in starts[1:]] + [len(body.lines)]  # longer when no article
    inner = _implications_by_article(headings)
    articles = tuple(
        parse_article(body, start, end, inner[start.index], topics)
        for start, end in zip(starts, ends, strict=False)
    )
    _check_duplicate_dois(body.report, articles)
    first_broken = min(body.broken, default=len(body.lines))  # a heading reported as broken
    for heading in headings:
        misread = first_broken < heading.index  # the section belongs to it: reported there
        if heading.kind == "implications" and heading.index < intro_end and not misread:
            body.report.error(
                "implications-before-article",
                body.line_no(heading.index),
                f'"### {IMPLICATIONS}" before the first article',
            )
    return intro, articles


def _implications_by_article(headings: list[Heading]) -> dict[int, list[Heading]]:
    """The "### Practice Implications" headings of each article, keyed by its title's line."""
    inner: dict[int, list[Heading]] = {}
    current: list[Heading] | None = None
    for heading in headings:
        if heading.kind == "article":
            current = inner.setdefault(heading.index, [])
        elif heading.kind == "implications" and current is not None:
            current.append(heading)
    return inner


def _check_article_count(body: Body, starts: list[Heading], closing_line: int) -> None:
    if not starts:
        text_lines = [index for index, line in enumerate(body.lines) if line.strip()]
        line = body.line_no(text_lines[0]) if text_lines else closing_line
        body.report.error(
            "no-articles", line, "the issue has no articles: each starts with a line '## Title'"
        )
    elif len(starts) > MAX_ARTICLES:
        body.report.error(
            "too-many-articles",
            body.line_no(starts[MAX_ARTICLES].index),
            f"too many articles ({len(starts)}); an issue has at most {MAX_ARTICLES}",
        )


def _check_duplicate_dois(report: Report, articles: tuple[Article, ...]) -> None:
    seen: dict[str, int] = {}
    for article in articles:
        if article.doi and article.doi.lower() in seen:
            first = seen[article.doi.lower()]
            report.warning(
                "duplicate-doi", article.line, f"the same DOI as the article on line {first}"
            )
        elif article.doi:
            seen[article.doi.lower()] = article.line
