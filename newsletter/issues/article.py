"""One article of an issue: its '## Title', field lines, summary and Practice Implications."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from newsletter import markdown
from newsletter.issues.body import (
    FIELD_RE,
    FIELDS,
    IMPLICATIONS,
    Body,
    Heading,
    check_inline_links,
    check_links,
    check_section,
    label,
)
from newsletter.issues.common import Report, canonical_topic, short
from newsletter.models import Article
from newsletter.values.doi import DoiError, parse_doi


def parse_article(
    body: Body, start: Heading, end: int, inner: list[Heading], topics: Sequence[str]
) -> Article:
    """One article, from its '## ' heading to the next; every problem is reported on the way."""
    report, title_line = body.report, body.line_no(start.index)
    if not start.title:
        report.error(title_line, "the article title is empty: write it after '## '")
    check_links(body, start.index, start.index + 1)
    summary_end = inner[0].index if inner else end
    fields, summary_start = _fields(body, start.index + 1, summary_end)
    citation = _required(fields, "Citation", title_line, start.title, report)
    doi, link = _doi_and_link(fields, title_line, start.title, report)
    chosen = _topics(fields, topics, title_line, start.title, report)
    return Article(
        title=start.title,
        citation=citation,
        doi=doi,
        link=link,
        topics=chosen,
        summary=_summary(body, summary_start, summary_end, title_line, start.title),
        implications=_implications(body, inner, end, title_line, start.title),
        line=title_line,
    )


def _fields(body: Body, start: int, end: int) -> tuple[dict[str, tuple[str, int]], int]:
    """The `Name: value` lines directly under a title, and the body index where the summary starts."""
    found: dict[str, tuple[str, int]] = {}
    index = start
    while index < end:
        line = body.lines[index]
        match = FIELD_RE.fullmatch(line) if index not in body.code else None
        if line.strip() and match is None:
            break
        if match:
            _add_field(match.group(1), match.group(2).strip(), body.line_no(index), found, body)
        index += 1
    return found, index


def _add_field(
    name: str, value: str, line: int, found: dict[str, tuple[str, int]], body: Body
) -> None:
    canonical = next((known for known in FIELDS if known.lower() == name.lower()), None)
    if canonical is None:
        suggestion = (
            body.report.hint(name, FIELDS) or " (fields are Citation, DOI, Link and Topics)"
        )
        body.report.error(line, f'unknown field "{short(name)}"{suggestion}')
    elif canonical in found:
        body.report.error(
            line, f'"{canonical}:" appears twice (first on line {found[canonical][1]})'
        )
    elif not value:
        body.report.error(line, f'"{canonical}:" is empty')
    else:
        found[canonical] = (value, line)
        if canonical == "Citation":
            check_inline_links(body.report, value, line)


def _summary(body: Body, start: int, end: int, title_line: int, title: str) -> str:
    summary = body.text(start, end)
    check_section(body, start, end)
    if not any(token.type == "paragraph_open" for token in markdown.parse(summary)):
        body.report.error(title_line, f"{label(title)} has no summary: write it under the fields")
    return summary


def _implications(
    body: Body, headings: list[Heading], end: int, title_line: int, title: str
) -> str:
    if not headings:
        body.report.error(title_line, f'{label(title)} has no "### {IMPLICATIONS}" section')
        return ""
    for extra in headings[1:]:
        body.report.error(body.line_no(extra.index), f'a second "### {IMPLICATIONS}" heading')
    start = headings[0].index + 1
    text = body.text(start, end)
    check_section(body, start, end)
    if not text.strip():
        body.report.error(body.line_no(headings[0].index), f'"### {IMPLICATIONS}" is empty')
    return text


def _required(
    fields: dict[str, tuple[str, int]], name: str, title_line: int, title: str, report: Report
) -> str:
    if name not in fields:
        report.error(title_line, f'{label(title)} has no "{name}:" line')
        return ""
    return fields[name][0]


def _doi_and_link(
    fields: dict[str, tuple[str, int]], title_line: int, title: str, report: Report
) -> tuple[str | None, str | None]:
    """The bare DOI and the https link of an article; at least one is required."""
    doi = link = None
    if "DOI" in fields:
        raw, line = fields["DOI"]
        try:
            doi = parse_doi(raw)
        except DoiError as err:
            report.error(line, str(err))
        if doi is not None:
            _doubtful_doi(doi, line, report)
    if "Link" in fields:
        link = _link(*fields["Link"], report)
    if "DOI" not in fields and "Link" not in fields:
        report.error(title_line, f'{label(title)} needs a "DOI:" or a "Link:" line')
    return doi, link


def _doubtful_doi(doi: str, line: int, report: Report) -> None:
    """Warn about what is valid but is usually a copy-and-paste slip."""
    if any(char.isspace() for char in doi):
        report.warning(line, "the DOI holds a space: is there something else on this line?")
    elif doi.endswith((".", ",", ";")):
        report.warning(line, f'the DOI ends with "{doi[-1]}": is that part of it?')


def _link(raw: str, line: int, report: Report) -> str | None:
    if not _is_https_address(raw):
        report.error(line, f'Link must be an https:// address, not "{short(raw)}"')
        return None
    return raw


def _is_https_address(raw: str) -> bool:
    if any(char.isspace() for char in raw):
        return False
    try:
        parts = urlsplit(raw)
        return parts.scheme.lower() == "https" and bool(parts.hostname)
    except ValueError:  # e.g. "https://[x" (a bracketed host that is no IP address)
        return False


def _topics(
    fields: dict[str, tuple[str, int]],
    topics: Sequence[str],
    title_line: int,
    title: str,
    report: Report,
) -> tuple[str, ...]:
    """The article's topics, canonical names from topics.yaml, in the author's order."""
    if "Topics" not in fields:
        report.error(title_line, f'{label(title)} has no "Topics:" line')
        return ()
    raw, line = fields["Topics"]
    names = [name.strip() for name in raw.split(";") if name.strip()]
    if not names:
        report.error(line, "no topic named: separate topic names with ';'")
    chosen: list[str] = []
    for name in names:
        topic = _topic(name, topics, line, report)
        if topic in chosen:
            report.warning(line, f'topic "{topic}" is listed twice')
        elif topic is not None:
            chosen.append(topic)
    return tuple(chosen)


def _topic(name: str, topics: Sequence[str], line: int, report: Report) -> str | None:
    topic = canonical_topic(name, topics)
    if topic is None:
        report.error(line, f'unknown topic "{short(name)}"{_topic_hint(name, topics, report)}')
    return topic


def _topic_hint(name: str, topics: Sequence[str], report: Report) -> str:
    """Why a topic name is unknown: commas used as separators, or a likely misspelling."""
    parts = [part.strip() for part in name.split(",")]
    if len(parts) > 1 and all(canonical_topic(part, topics) for part in parts):
        return " (separate topics with ';', not ',')"
    return report.hint(name, topics)
