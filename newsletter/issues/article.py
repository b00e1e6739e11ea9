"""One article of an issue: its '## Title', field lines, summary and Practice Implications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from newsletter import markdown
from newsletter.issues.body import (
    FIELD_RE,
    IMPLICATIONS,
    Body,
    Heading,
    check_links,
    check_section,
    label,
)
from newsletter.issues.common import Report, closest, short
from newsletter.issues.fields import (
    ARTICLE_FIELDS,
    Context,
    Raw,
    defaults,
    lookup,
    names,
    spoken_list,
)
from newsletter.issues.placeholders import is_placeholder
from newsletter.models import Article

FIELD_NAMES = names(ARTICLE_FIELDS)
BOTTOM_LINE = "Bottom line"


def parse_article(
    body: Body, start: Heading, end: int, inner: list[Heading], topics: Sequence[str]
) -> Article:
    """One article, from its '## ' heading to the next; every problem is reported on the way."""
    report, title_line = body.report, body.line_no(start.index)
    if not start.title:
        report.error("empty-title", title_line, "the article title is empty: write it after '## '")
    check_links(body, start.index, start.index + 1)
    summary_end = inner[0].index if inner else end
    found, summary_start, meant = _fields(body, start.index + 1, summary_end)
    meant |= _misplaced(body, summary_start, end)
    values = _field_values(found, meant, Context(report, topics), title_line, start.title)
    return Article(
        title=start.title,
        summary=_summary(body, summary_start, summary_end, title_line, start.title),
        implications=_implications(body, inner, end, title_line, start.title),
        line=title_line,
        citation_line=found["Citation"].line if "Citation" in found else 0,
        **values,
    )


def _fields(body: Body, start: int, end: int) -> tuple[dict[str, Raw], int, set[str]]:
    """The `Name: value` lines under a title, where the summary starts, what misspelt names meant.

    A misspelt "Topcs:" is then one finding, not also a missing "Topics:" line.
    """
    found: dict[str, Raw] = {}
    meant: set[str] = set()
    index = start
    while index < end:
        line = body.lines[index]
        match = FIELD_RE.fullmatch(line) if index not in body.code else None
        if line.strip() and match is None:
            _check_wrapped_bottom_line(body, index, found)
            break
        if match:
            number = body.line_no(index)
            meant |= _add_field(match.group(1), match.group(2).strip(), number, found, body)
        index += 1
    return found, index, meant


def _check_wrapped_bottom_line(body: Body, index: int, found: dict[str, Raw]) -> None:
    """Text right under "Bottom line:" (no blank line) is the summary's start: say so, it is a slip."""
    bottom = found.get(BOTTOM_LINE)
    if bottom is not None and bottom.line == body.line_no(index - 1):
        body.report.warning(
            "bottom-line-wrapped",
            body.line_no(index),
            f'this line continues "{BOTTOM_LINE}:" but is read as the start of the summary: keep '
            "the bottom line on one line and leave a blank line before the summary",
        )


def _misplaced(body: Body, start: int, end: int) -> set[str]:
    """Fields written further down the article: reported there as misplaced, not also missing."""
    names: set[str] = set()
    for index in range(start, end):
        match = FIELD_RE.fullmatch(body.lines[index]) if index not in body.code else None
        field = lookup(ARTICLE_FIELDS, match.group(1)) if match else None
        if field is not None:
            names.add(field.name)
    return names


def _add_field(name: str, value: str, line: int, found: dict[str, Raw], body: Body) -> set[str]:
    """Keep one field line by its canonical name; report unknown, repeated and empty ones.

    Returns the field an unknown name most likely meant ("Topcs" → {"Topics"}), else nothing.
    """
    report = body.report
    field = lookup(ARTICLE_FIELDS, name)
    if field is None:
        guess = None if report.full else closest(name, FIELD_NAMES)  # past 200, not worth it
        suggestion = report.hint(name, FIELD_NAMES) or f" (fields are {spoken_list(FIELD_NAMES)})"
        report.error("unknown-field", line, f'unknown field "{short(name)}"{suggestion}')
        return {guess} if guess else set()
    elif field.name in found:
        first = found[field.name].line
        report.error(
            "duplicate-field", line, f'"{field.name}:" appears twice (first on line {first})'
        )
    elif not value:
        report.error("empty-field", line, f'"{field.name}:" is empty')
    else:
        found[field.name] = Raw(value, line)
    return set()


def _field_values(
    found: dict[str, Raw], meant: set[str], context: Context, title_line: int, title: str
) -> dict[str, Any]:
    """The Article values of the fields, in table order; a missing required one is reported."""
    values = defaults(ARTICLE_FIELDS)
    for position, field in enumerate(ARTICLE_FIELDS):
        if field.name in found:
            if not is_placeholder(found[field.name].text):  # reported once, as a placeholder
                values[field.attr] = field.parse(found[field.name], context)
        elif field.required and field.name not in meant:
            context.report.error(
                f"missing-{field.name.lower()}",
                title_line,
                f'{label(title)} has no "{field.name}:" line',
            )
        if field.group and _last_of_group(position):
            _check_group(field.group, {*found, *meant}, context.report, title_line, title)
    return values


def _last_of_group(position: int) -> bool:
    later = ARTICLE_FIELDS[position + 1 :]
    return all(field.group != ARTICLE_FIELDS[position].group for field in later)


def _check_group(group: str, found: set[str], report: Report, line: int, title: str) -> None:
    """At least one field of ``group`` (DOI/Link) is required: report when none is given."""
    members = [field.name for field in ARTICLE_FIELDS if field.group == group]
    if not any(name in found for name in members):
        wanted = " or a ".join(f'"{name}:"' for name in members)
        report.error(f"missing-{members[0].lower()}", line, f"{label(title)} needs a {wanted} line")


def _summary(body: Body, start: int, end: int, title_line: int, title: str) -> str:
    summary = body.text(start, end)
    check_section(body, start, end)
    if not any(token.type == "paragraph_open" for token in markdown.parse(summary)):
        body.report.error(
            "missing-summary",
            title_line,
            f"{label(title)} has no summary: write it under the fields",
        )
    return summary


def _implications(
    body: Body, headings: list[Heading], end: int, title_line: int, title: str
) -> str:
    if not headings:
        body.report.error(
            "missing-implications",
            title_line,
            f'{label(title)} has no "### {IMPLICATIONS}" section',
        )
        return ""
    for extra in headings[1:]:
        body.report.error(
            "duplicate-implications",
            body.line_no(extra.index),
            f'a second "### {IMPLICATIONS}" heading',
        )
    start = headings[0].index + 1
    text = body.text(start, end)
    check_section(body, start, end)
    if not text.strip():
        body.report.error(
            "empty-implications", body.line_no(headings[0].index), f'"### {IMPLICATIONS}" is empty'
        )
    return text
