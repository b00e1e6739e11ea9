"""``newsletter new``: a draft issue file with ``[TODO: …]`` gaps for the author to fill in.

The front matter and one article skeleton per DOI come from what is known (the month, the send
time ``schedule.yaml`` gives it, each DOI's Crossref record); everything else is a placeholder,
which ``check`` lists as a warning while the issue is a draft and as an error once it is ready.
The file is written whole or not at all, and never over an existing one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from newsletter.doi.client import Client, NotFound, Unreachable
from newsletter.doi.record import Record
from newsletter.doi.store import MetadataStore
from newsletter.errors import IssueError
from newsletter.issues.common import display
from newsletter.issues.placeholders import placeholder
from newsletter.values.month import parse_month


@dataclass(frozen=True)
class Skeleton:
    """One article to be: its DOI, its record when the lookup worked, and why not otherwise."""

    doi: str
    record: Record | None = None
    problem: str = ""  # "cannot reach Crossref: …", "Crossref does not know this DOI"


def look_up(doi: str, store: MetadataStore, client: Client | None) -> Skeleton:
    """The DOI's stored record, else Crossref's (then stored); a problem instead of raising."""
    record = store.get(doi)
    if record is not None:
        return Skeleton(doi, record)
    if client is None:
        return Skeleton(doi, problem="no stored record, and not looked up")
    try:
        record = client.record(doi)
    except NotFound:
        return Skeleton(doi, problem="Crossref does not know this DOI")
    except Unreachable as err:
        return Skeleton(doi, problem=f"cannot reach Crossref ({err})")
    with contextlib.suppress(OSError):  # the draft can do without the cache; `check` refetches
        store.put(record)
    return Skeleton(doi, record)


def draft_text(
    month: str,
    *,
    newsletter: str,
    sends_at: datetime | None,
    waits: str = "",
    articles: Sequence[Skeleton],
) -> str:
    """The draft issue file for ``month``: front matter, intro and one skeleton per article."""
    when = datetime(*parse_month(month), 1)
    lines = [
        "---",
        f"# {newsletter}, {when:%B %Y}: a draft written by `newsletter new`.",
        *_send_comment(sends_at, waits),
        "# Replace every [TODO: …]; `newsletter check` lists those left. Then set status: ready.",
        f'subject: "{placeholder("the subject readers see, under 78 characters")}"',
        f'preheader: "{placeholder("one sentence shown after the subject in the inbox")}"',
        "status: draft",
        "---",
        "",
        placeholder('a line or two to open the issue: "This month …"'),
    ]
    for article in articles or (Skeleton(""),):
        lines += ["", *_article(article)]
    return "\n".join(lines) + "\n"


def _send_comment(sends_at: datetime | None, waits: str) -> list[str]:
    """When the scheduler sends it, and how long it waits for ``status: ready`` (``7d``)."""
    if sends_at is None:
        return []
    zone = getattr(sends_at.tzinfo, "key", None) or sends_at.tzname() or ""
    day = f"{sends_at:%A} {sends_at.day} {sends_at:%B %Y at %H:%M}"  # no %-d: glibc only
    lines = [f"# By schedule.yaml it goes out {day} ({zone})"]
    if waits:
        lines[0] += " if its status"
        lines.append(f"# is ready by then; otherwise as soon as it is, within {waits}.")
    else:
        lines[0] += "."
    return lines


# Optional in the format, but the email shows it first: ask for it, and say it may go.
BOTTOM_LINE_HINT = "what a busy clinician should take away, in one sentence (or delete this line)"


def _article(article: Skeleton) -> list[str]:
    """One article skeleton: title, Citation and DOI from the record, placeholders for the rest."""
    record = article.record
    title = record.title if record is not None and record.title else ""
    lines = [f"## {' '.join(title.split()) or placeholder('the article title')}"]
    lines.append(f"Citation: {_citation(record) or placeholder('the full reference, APA style')}")
    if article.doi:
        lines.append(f"DOI: {article.doi}")
    else:
        lines.append(f"DOI: {placeholder('the DOI, 10.xxxx/…')}")
    lines += [
        f"Topics: {placeholder('topic names from issues/topics.yaml, separated by ;')}",
        f"Bottom line: {placeholder(BOTTOM_LINE_HINT)}",
        "",
        placeholder("the summary: what the study asked, did and found, in a few paragraphs"),
        "",
        "### Practice Implications",
        placeholder("what the findings mean for practice"),
    ]
    return lines


def _citation(record: Record | None) -> str:
    """The APA reference of ``record`` in Markdown, without its DOI link (the DOI: line has it)."""
    if record is None:
        return ""
    from newsletter.doi.cite import format_reference, without_doi_link  # citeproc on use only

    return without_doi_link(format_reference(record, "apa", markdown=True))


def refuse_existing(path: Path) -> None:
    """IssueError when ``path`` exists: a draft never replaces an issue."""
    if path.exists():
        raise _exists(path)


def _exists(path: Path) -> IssueError:
    return IssueError(f"{display(path)} already exists: edit it, or remove it to start over")


def write_new(path: Path, text: str) -> None:
    """Write ``path`` whole, atomically, and only if it does not exist (IssueError otherwise)."""
    refuse_existing(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise IssueError(f"cannot write {display(path)}: {err.strerror or err}") from err
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)  # fails if the file appeared meanwhile: nothing is replaced
    except FileExistsError as err:
        raise _exists(path) from err
    except OSError as err:
        raise IssueError(f"cannot write {display(path)}: {err.strerror or err}") from err
    finally:
        os.unlink(temporary)
