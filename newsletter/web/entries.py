"""The sent issues as the archive shows them: ``Entry`` (one archive folder, its file parsed) and
the topic slugs of the archive's addresses."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from newsletter.archive import ArchivedIssue
from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.issues import load_topics, read_issue
from newsletter.models import Article, Issue
from newsletter.render.jinja import month_name
from newsletter.values.clock import aware
from newsletter.values.month import parse_month
from newsletter.web.search import Document, document

log = logging.getLogger("newsletter.web.archive")

_TOPICS_LINE_RE = re.compile(r"^\s*topics\s*:(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Entry:
    """One sent issue as the archive shows it."""

    archived: ArchivedIssue
    issue: Issue

    @property
    def month(self) -> str:
        return self.archived.month

    @property
    def sent_at(self) -> datetime:
        when = self.archived.finished_at or self.archived.started_at
        if when is None:
            year, number = parse_month(self.month)
            return datetime(year, number, 1, tzinfo=UTC)
        return aware(when)

    def anchor(self, article: Article) -> str:
        """The id of ``article`` on its issue's page (also in the topic feeds' entry ids)."""
        return f"article-{self.issue.articles.index(article) + 1}"

    @functools.cached_property
    def documents(self) -> tuple[Document, ...]:
        """The issue's articles as search sees them (made once per parsed issue, then kept)."""
        return tuple(
            document(
                title=article.title,
                href=f"{self.month}/#{self.anchor(article)}",
                issue=self.issue.subject,
                month_label=month_name(self.month),
                citation=article.citation,
                summary=article.summary,
            )
            for article in self.issue.articles
        )

    @property
    def topics(self) -> list[str]:
        """The issue's topics, each once, in order of first appearance."""
        return issue_topics(self.issue)


def issue_topics(issue: Issue) -> list[str]:
    """The topics of ``issue``'s articles, each once, in order of first appearance."""
    return list(dict.fromkeys(topic for article in issue.articles for topic in article.topics))


def vocabulary_of(settings: Settings) -> tuple[str, ...]:
    try:
        return load_topics(settings.topics_file)
    except ConfigError as err:
        log.warning("archive: %s; reading archived issues with their own topics", err)
        return ()


def _own_topics(source: str) -> list[str]:
    """The topic names an archived file uses (topics.yaml may have changed since it was sent)."""
    names: list[str] = []
    for match in _TOPICS_LINE_RE.finditer(source):
        names.extend(" ".join(name.split()) for name in match.group(1).split(";") if name.strip())
    return names


def read_archived_issue(archived: ArchivedIssue, vocabulary: Sequence[str]) -> Issue:
    """Parse ``issue.md`` of an archive folder (it is named for its month by the folder, not the file)."""
    source = archived.source_path.read_text(encoding="utf-8-sig")
    topics = [
        *vocabulary,
        *(
            name
            for name in _own_topics(source)
            if name.casefold() not in {v.casefold() for v in vocabulary}
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="newsletter-archive-") as folder:
        copy = Path(folder) / f"{archived.month}.md"
        copy.write_text(source, encoding="utf-8")
        issue = read_issue(copy, topics)
    return dataclasses.replace(issue, path=archived.source_path)
