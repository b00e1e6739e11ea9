"""The fields of an issue file, declared once: front matter keys and article field lines.

Each table row names a field as the author writes it, the ``Issue``/``Article`` attribute it
fills, whether it is required, how its value is parsed and checked, and its help text. The
parsers, the did-you-mean candidates, the values handed to the models and the tables of
``docs/issue-format.md`` all come from these rows: adding a field is a row here and a field on
the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from newsletter.issues.common import (
    Report,
    canonical_topic,
    check_inline_links,
    has_line_break,
    short,
)
from newsletter.models import IssueStatus
from newsletter.values.doi import DoiError, parse_doi

SUBJECT_MAX = 78  # longer subjects are cut off by most inboxes
PREHEADER_MAX = 140
BOTTOM_LINE_MAX = 200  # one sentence a reader takes in at a glance
# A sentence ends at . ! or ? (and closing quotes or brackets) before a space and a capital or digit;
# a few abbreviations (e.g., i.e., vs., et al.) end no sentence.
_SENTENCE_END_RE = re.compile(
    r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bal)(?<!\bcf)[.!?][\"'”’)\]]*\s+[\"“(]?[A-Z0-9]"
)


@dataclass(frozen=True)
class Raw:
    """One field's value as written, where it stands, and whether it spans lines (YAML)."""

    text: str
    line: int
    multiline: bool = False


@dataclass(frozen=True)
class Context:
    """What a field's parser may need: the findings to report to and the topic vocabulary."""

    report: Report
    topics: Sequence[str] = ()


Parser = Callable[[Raw, Context], Any]  # the value for the model; None when absent or invalid


@dataclass(frozen=True)
class Field:
    """One field of an issue file: its name, its model attribute, how it is read, its help."""

    name: str  # as the author writes it: "subject", "DOI"
    attr: str  # the Issue/Article attribute it fills
    parse: Parser
    default: Any  # the model's value when the field is absent
    help: str  # Markdown, for the docs table
    required: bool = False
    group: str = ""  # fields of one group: at least one of them is required
    missing: tuple[str, str] | None = None  # code and message when absent (front matter)

    @property
    def requirement(self) -> str:
        """The "required" column of the docs table."""
        if self.group:
            return f"one of {self.group}"
        return "yes" if self.required else "no"


def names(table: Sequence[Field]) -> tuple[str, ...]:
    """The field names of a table: the did-you-mean candidates."""
    return tuple(field.name for field in table)


def spoken_list(items: Sequence[str]) -> str:
    """``a, b and c``: how a message lists the names of a table."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lookup(table: Sequence[Field], name: str) -> Field | None:
    """The field ``name`` means, ignoring case and runs of spaces (``bottom  LINE``), or None."""
    wanted = " ".join(name.split()).lower()
    return next((field for field in table if field.name.lower() == wanted), None)


def defaults(table: Sequence[Field]) -> dict[str, Any]:
    """Every attribute of a table at its default: the values before anything is parsed."""
    return {field.attr: field.default for field in table}


# --- front matter ------------------------------------------------------------------------------


def _subject(raw: Raw, context: Context) -> str:
    """The subject: one non-empty line; a warning when inboxes would cut it."""
    subject, report = raw.text.strip(), context.report
    if not subject:
        report.error("empty-subject", raw.line, "the subject is empty")
    elif raw.multiline or has_line_break(subject):
        report.error(
            "multiline-subject",
            raw.line,
            "the subject must be a single line (no line breaks or control characters)",
        )
    elif len(subject) > SUBJECT_MAX:
        report.warning(
            "subject-length",
            raw.line,
            f"the subject has {len(subject)} characters; inboxes cut it after about {SUBJECT_MAX}",
        )
    return subject


def _preheader(raw: Raw, context: Context) -> str | None:
    """The preheader with its spaces collapsed; None when empty (then it counts as missing)."""
    preheader = " ".join(raw.text.split())
    if len(preheader) > PREHEADER_MAX:
        context.report.warning(
            "preheader-length",
            raw.line,
            f"the preheader has {len(preheader)} characters; inboxes show about {PREHEADER_MAX}",
        )
    return preheader or None


def _status(raw: Raw, context: Context) -> IssueStatus:
    """``draft`` or ``ready``, any case; anything else is an error (and the issue a draft)."""
    value = raw.text.strip().lower()
    if value not in tuple(IssueStatus):
        context.report.error(
            "bad-status", raw.line, f'status must be "draft" or "ready", not "{short(raw.text)}"'
        )
        return IssueStatus.DRAFT
    return IssueStatus(value)


FRONT_MATTER: tuple[Field, ...] = (
    Field(
        "subject",
        "subject",
        _subject,
        "",
        "the email's subject: one line (a line break anywhere, or a control character, is an "
        f"error); a warning above {SUBJECT_MAX} characters",
        required=True,
        missing=(
            "missing-subject",
            "the front matter has no subject: add 'subject: …' (the email's subject)",
        ),
    ),
    Field(
        "preheader",
        "preheader",
        _preheader,
        None,
        f"the inbox preview text; a warning when missing or above {PREHEADER_MAX} characters. "
        "Spaces and line breaks are collapsed to single spaces",
        missing=(
            "missing-preheader",
            "no preheader: the inbox preview will show the email's first words",
        ),
    ),
    Field(
        "status",
        "status",
        _status,
        IssueStatus.DRAFT,
        "`draft` (the default) or `ready` (case does not matter); only a `ready` issue is ever "
        "sent by the scheduler",
    ),
)


# --- article fields ----------------------------------------------------------------------------


def _citation(raw: Raw, context: Context) -> str:
    """The reference as written; its inline Markdown links must be safe."""
    check_inline_links(context.report, raw.text, raw.line)
    return raw.text


def _bottom_line(raw: Raw, context: Context) -> str:
    """The one-sentence take-away: safe inline links; a warning when long or several sentences."""
    text, report = " ".join(raw.text.split()), context.report
    check_inline_links(report, text, raw.line)
    if len(text) > BOTTOM_LINE_MAX:
        report.warning(
            "bottom-line-length",
            raw.line,
            f"the bottom line has {len(text)} characters; keep it to one sentence of at most "
            f"{BOTTOM_LINE_MAX}",
        )
    elif _SENTENCE_END_RE.search(text):
        report.warning(
            "bottom-line-sentences",
            raw.line,
            "the bottom line holds more than one sentence: keep one, the rest belongs in the summary",
        )
    return text


def _doi(raw: Raw, context: Context) -> str | None:
    """The bare DOI; an error when it is none, a warning when it looks like a copying slip."""
    try:
        doi = parse_doi(raw.text)
    except DoiError as err:
        context.report.error("bad-doi", raw.line, str(err))
        return None
    if any(char.isspace() for char in doi):
        context.report.warning(
            "doubtful-doi", raw.line, "the DOI holds a space: is there something else on this line?"
        )
    elif doi.endswith((".", ",", ";")):
        context.report.warning(
            "doubtful-doi", raw.line, f'the DOI ends with "{doi[-1]}": is that part of it?'
        )
    return doi


def _link(raw: Raw, context: Context) -> str | None:
    """An https:// address with a host and no spaces."""
    if not _is_https_address(raw.text):
        context.report.error(
            "bad-link", raw.line, f'Link must be an https:// address, not "{short(raw.text)}"'
        )
        return None
    return raw.text


def _is_https_address(raw: str) -> bool:
    if any(char.isspace() for char in raw):
        return False
    try:
        parts = urlsplit(raw)
        return parts.scheme.lower() == "https" and bool(parts.hostname)
    except ValueError:  # e.g. "https://[x" (a bracketed host that is no IP address)
        return False


def _topics(raw: Raw, context: Context) -> tuple[str, ...]:
    """The article's topics, canonical names from topics.yaml, in the author's order."""
    report = context.report
    names = [name.strip() for name in raw.text.split(";") if name.strip()]
    if not names:
        report.error("empty-topics", raw.line, "no topic named: separate topic names with ';'")
    chosen: list[str] = []
    for name in names:
        topic = _topic(name, context, raw.line)
        if topic in chosen:
            report.warning("duplicate-topic", raw.line, f'topic "{topic}" is listed twice')
        elif topic is not None:
            chosen.append(topic)
    return tuple(chosen)


def _topic(name: str, context: Context, line: int) -> str | None:
    topic = canonical_topic(name, context.topics)
    if topic is None:
        hint = _topic_hint(name, context)
        context.report.error("unknown-topic", line, f'unknown topic "{short(name)}"{hint}')
    return topic


def _topic_hint(name: str, context: Context) -> str:
    """Why a topic name is unknown: commas used as separators, or a likely misspelling."""
    parts = [part.strip() for part in name.split(",")]
    if len(parts) > 1 and all(canonical_topic(part, context.topics) for part in parts):
        return " (separate topics with ';', not ',')"
    return context.report.hint(name, context.topics)


ARTICLE_FIELDS: tuple[Field, ...] = (
    Field(
        "Citation",
        "citation",
        _citation,
        "",
        "the full reference (APA style), one line; inline Markdown such as `*Journal*` allowed",
        required=True,
    ),
    Field(
        "DOI",
        "doi",
        _doi,
        None,
        "`10.xxxx/…`, `doi:10.xxxx/…` or `https://doi.org/10.xxxx/…` (also `http://`, "
        "`dx.doi.org`); stored bare",
        group="DOI/Link",
    ),
    Field(
        "Link",
        "link",
        _link,
        None,
        "an `https://` address, for an article without a DOI",
        group="DOI/Link",
    ),
    Field(
        "Topics",
        "topics",
        _topics,
        (),
        "one or more topic names separated by **semicolons**",
        required=True,
    ),
    Field(
        "Bottom line",
        "bottom_line",
        _bottom_line,
        None,
        "the take-away in one sentence, on one line (inline Markdown allowed); shown "
        "under the title and in the email's *In this issue* list. A warning above "
        f"{BOTTOM_LINE_MAX} characters or with more than one sentence",
    ),
)
