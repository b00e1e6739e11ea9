"""The Markdown body of an issue file: its headings, and checks every section shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from newsletter import markdown
from newsletter.issues.common import Report, closest, fold, link_problem, short
from newsletter.issues.fields import ARTICLE_FIELDS, lookup
from newsletter.values.linktext import link_text_problem

IMPLICATIONS = "Practice Implications"
# A field name is one word, or one of the few names of several words ("Bottom line"): any other
# "Some words: …" line is prose, not a misspelt field.
_SPACED_NAMES = "|".join(
    r"[ \t]+".join(map(re.escape, field.name.split()))
    for field in ARTICLE_FIELDS
    if " " in field.name
)
FIELD_RE = re.compile(
    rf" {{0,3}}((?i:{_SPACED_NAMES})(?![\w-])|[A-Za-z][\w-]*)[ \t]*:(?!//)(.*)"
    if _SPACED_NAMES
    else r" {0,3}([A-Za-z][\w-]*)[ \t]*:(?!//)(.*)"
)
_NO_SPACE_HEADING_RE = re.compile(r" {0,3}#{2,6}[^\s#]")


@dataclass
class Body:
    """The body's lines, the file line of the first one, and which lines are inside code blocks."""

    lines: list[str]
    first: int
    report: Report
    code: set[int] = field(default_factory=set)
    broken: set[int] = field(default_factory=set)  # lines meant as headings, reported as such

    def line_no(self, index: int) -> int:
        return self.first + index

    def text(self, start: int, end: int) -> str:
        return "\n".join(self.lines[start:end]).strip("\n")


@dataclass
class Heading:
    index: int  # body line
    kind: str  # "article", "implications" or "other"
    title: str


def find_headings(body: Body) -> list[Heading]:
    """Every heading of the body, classified; an unexpected one is reported here."""
    tokens = markdown.parse("\n".join(body.lines))
    headings: list[Heading] = []
    for position, token in enumerate(tokens):
        if token.type in ("fence", "code_block") and token.map:
            body.code.update(range(*token.map))
        if token.type != "heading_open" or not token.map:
            continue
        title = tokens[position + 1].content.strip()
        kind = _heading_kind(token.tag, token.markup, token.level, title)
        slip = _implications_slip(token.tag, token.markup, token.level, title)
        if slip:  # read as the section it was meant to be: one finding, not a broken article
            kind = "implications"
            body.report.error("implications-heading", body.line_no(token.map[0]), slip)
        elif kind == "other":
            # a setext heading is reported at its underline, the line that made it a heading
            line = token.map[0] if token.markup.startswith("#") else token.map[1] - 1
            body.report.error(
                "unexpected-heading", body.line_no(line), _heading_problem(token.tag, token.markup)
            )
            body.broken.add(line)
        headings.append(Heading(token.map[0], kind, title))
    return headings


def _heading_kind(tag: str, markup: str, level: int, title: str) -> str:
    if level == 0 and tag == "h2" and markup == "##":
        return "article"
    if (
        level == 0
        and tag == "h3"
        and markup == "###"
        and fold(title.rstrip(":")) == fold(IMPLICATIONS)
    ):
        return "implications"
    return "other"


def _implications_slip(tag: str, markup: str, level: int, title: str) -> str | None:
    """What is wrong with a heading meant as "### Practice Implications", or None.

    "## Practice Implications" (it would start an article) and a misspelt "### " heading
    ("### Practice Implication", "### Implications") are read as the section they mean.
    """
    wanted = f"### {IMPLICATIONS}"
    if level or not markup.startswith("#"):
        return None
    name = title.rstrip(":")
    if tag == "h2" and fold(name) == fold(IMPLICATIONS):
        return f'"## {short(title)}" needs three #: "{wanted}" (with two it starts an article)'
    if tag == "h3" and fold(name) != fold(IMPLICATIONS) and closest(name, [IMPLICATIONS]):
        return f'"### {short(title)}" should read "{wanted}"'
    return None


def _heading_problem(tag: str, markup: str) -> str:
    if not markup.startswith("#"):
        return "a line of '---' or '===' under text makes it a heading: leave a blank line above it"
    if tag == "h1":
        return "'# ' headings are not used: an article starts with '## Title'"
    if tag == "h3":
        return f"unexpected heading: the only '### ' heading is '### {IMPLICATIONS}'"
    if tag == "h2":
        return "a heading inside a list or quote cannot start an article"
    return f"'{markup} ' headings are not used: articles are '## Title', then '### {IMPLICATIONS}'"


# --- Markdown checks -----------------------------------------------------------------------------


def check_section(body: Body, start: int, end: int) -> None:
    """Links, '##Title' lookalikes and stray field lines in one Markdown section."""
    check_links(body, start, end)
    under_broken = False  # in the field lines right under a broken heading, reported there
    for index in range(start, end):
        line = body.lines[index]
        if index in body.code:
            under_broken = False
            continue
        if _NO_SPACE_HEADING_RE.match(line):
            _no_space_heading(body, index)
        match = FIELD_RE.fullmatch(line)
        is_field = match is not None and lookup(ARTICLE_FIELDS, match.group(1)) is not None
        if match and is_field and not under_broken:
            body.report.error(
                "misplaced-field",
                body.line_no(index),
                f'"{match.group(1)}:" is not directly under the article title, so it is not a '
                "field: fields come right after '## Title', before the summary",
            )
        under_broken = index in body.broken or (under_broken and is_field)


def _is_field(line: str) -> bool:
    match = FIELD_RE.fullmatch(line)
    return match is not None and lookup(ARTICLE_FIELDS, match.group(1)) is not None


def _no_space_heading(body: Body, index: int) -> None:
    """'##Title': an error when field lines follow (an article was meant), else a warning."""
    following = index + 1 < len(body.lines) and _is_field(body.lines[index + 1])
    if not following:
        body.report.warning(
            "heading-no-space",
            body.line_no(index),
            "this is not a heading: put a space after the '#'s",
        )
        return
    body.broken.add(index)
    body.report.error(
        "article-heading-no-space",
        body.line_no(index),
        "this article title is not a heading, so the fields under it are not read: put a "
        "space after '##'",
    )


def check_links(body: Body, start: int, end: int) -> None:
    """Unsafe or empty link targets (errors); link text and alt text that say nothing (warnings)."""
    lines = body.lines[start:end]
    for link in markdown.links("\n".join(lines)):
        code, message = _link_finding(link)
        if code:
            line = body.line_no(start + _locate(lines, link.line, link.url))
            add = body.report.warning if code in ("empty-alt", "link-text") else body.report.error
            add(code, line, message)


def _link_finding(link: markdown.Link) -> tuple[str, str]:
    """The code and message of what is wrong with one link or image; ("", "") when nothing."""
    if not markdown.is_safe_url(link.url):
        return link_problem(link.url)
    url = short(link.url)
    if link.image and not link.text.strip():
        return "empty-alt", (
            f'the image "{url}" has no alt text: say what it shows, ![a chart of the results]({url})'
        )
    problem = None if link.image else link_text_problem(link.text, link.url)
    if problem:
        return "link-text", (
            f'the link to "{url}" {problem}: screen readers read links out of context, so say '
            "where it leads ([the full study](…))"
        )
    return "", ""


def _locate(lines: list[str], start: int, url: str) -> int:
    """The line of a paragraph (starting at ``start``) that holds ``url``; else ``start``."""
    for index in range(start, len(lines)):
        if not lines[index].strip():
            break
        if url in lines[index] or unquote(url) in lines[index]:
            return index
    return start


def label(title: str) -> str:
    """How a message names an article: by its title, or as "this article" when it has none."""
    return f'article "{short(title)}"' if title else "this article"
