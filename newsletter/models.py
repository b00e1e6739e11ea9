"""Frozen values handed from one pipeline stage to the next.

``Issue`` (parsed file) → ``RenderedIssue`` (HTML + text, once per issue) → per recipient a
cheap string substitution of the ``Placeholder`` values → an ``OutgoingMessage`` for a transport.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsletter.values.doi import doi_url


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem found in a file, located to its line (``path:line: error: message [code]``)."""

    path: str
    line: int
    severity: Severity
    message: str
    code: str  # the kind of problem, stable across rewordings: see newsletter/codes.py

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message} [{self.code}]"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    READY = "ready"


@dataclass(frozen=True)
class Article:
    """One research summary of an issue. Markdown fields are kept as the author wrote them."""

    title: str
    citation: str  # inline Markdown
    doi: str | None  # bare DOI, e.g. "10.1002/cpp.2509"
    link: str | None  # https:// address for an article without a DOI
    topics: tuple[str, ...]  # canonical names from issues/topics.yaml
    summary: str  # Markdown
    implications: str  # Markdown ("Practice Implications")
    line: int = 0  # line of the "## Title" heading
    citation_line: int = 0  # line of the "Citation:" field (0: unknown)
    bottom_line: str | None = None  # inline Markdown: the one-sentence take-away ("Bottom line:")

    @property
    def url(self) -> str:
        """Where the article lives: its https://doi.org/ link, else its Link."""
        if self.doi:
            return doi_url(self.doi)
        return self.link or ""


@dataclass(frozen=True)
class Issue:
    """A parsed, valid issue file."""

    month: str  # "YYYY-MM", from the file name
    path: Path
    subject: str
    preheader: str | None
    status: IssueStatus
    intro: str  # Markdown, may be empty
    articles: tuple[Article, ...]
    findings: tuple[Finding, ...] = ()  # warnings only (a file with errors never becomes an Issue)
    source: str = field(default="", repr=False)  # the file's text, for the archive


class Placeholder(enum.StrEnum):
    """Per-recipient values left in the rendered email and filled by plain string substitution.

    Only letters and underscores, so no URL encoder, MJML or premailer ever changes them; SendGrid
    substitutions use the same strings as keys.
    """

    UNSUBSCRIBE_URL = "__NL_UNSUBSCRIBE_URL__"
    PREFERENCES_URL = "__NL_PREFERENCES_URL__"


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once: final (inlined) HTML, plain text and the intermediate MJML."""

    month: str
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str


def personalise(template: str, values: Mapping[Placeholder, str]) -> str:
    """Fill the placeholders of a rendered body: the only per-recipient rendering work."""
    for placeholder, value in values.items():
        template = template.replace(placeholder.value, value)
    return template


class TopicMode(enum.StrEnum):
    """How a reader with topics reads an issue (``subscribers.topic_mode``)."""

    ALL = "all"  # every article, the reader's topics first and marked as theirs
    ONLY = "only"  # only the articles with one of the reader's topics (none: the issue is skipped)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def is_suppressed(self) -> bool:
        """Suppressed people are never mailed and never reactivated by an import."""
        return self in (
            SubscriberStatus.UNSUBSCRIBED,
            SubscriberStatus.BOUNCED,
            SubscriberStatus.COMPLAINED,
        )


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: SubscriberStatus
    topics: tuple[str, ...] = ()
    subscribed_at: datetime | None = None
    confirmed_at: datetime | None = None
    topic_mode: TopicMode = TopicMode.ALL


class LedgerStatus(enum.StrEnum):
    """Where one (issue, subscriber) pair stands in a send run."""

    PENDING = "pending"  # claimed into a batch, not yet handed to the transport
    SENT = "sent"  # the transport accepted it
    FAILED = "failed"  # the transport refused it for good
    UNCONFIRMED = "unconfirmed"  # in flight when the process died: may or may not have gone out
    SKIPPED = "skipped"  # reads only their topics and the issue has none of them: not sent


@dataclass(frozen=True)
class Recipient:
    """One addressee of a send, with the per-recipient values for the placeholders."""

    subscriber_id: int | None  # None for --test-to copies and confirmation emails
    email: str
    name: str | None
    substitutions: Mapping[Placeholder, str]
    message_id: str  # RFC 5322 Message-ID (with angle brackets)
    list_unsubscribe_url: str | None = None  # for List-Unsubscribe (RFC 8058)

    @classmethod
    def with_links(
        cls,
        *,
        subscriber_id: int | None,
        email: str,
        name: str | None,
        unsubscribe_url: str,
        preferences_url: str,
        message_id: str,
    ) -> Recipient:
        """A newsletter reader: their two links fill the placeholders; unsubscribe is also the header."""
        return cls(
            subscriber_id=subscriber_id,
            email=email,
            name=name,
            substitutions={
                Placeholder.UNSUBSCRIBE_URL: unsubscribe_url,
                Placeholder.PREFERENCES_URL: preferences_url,
            },
            message_id=message_id,
            list_unsubscribe_url=unsubscribe_url,
        )


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered email to a batch of recipients; transports personalise it per recipient."""

    subject: str
    html: str | None
    text: str
    sender_name: str
    sender_email: str
    reply_to: str | None
    recipients: tuple[Recipient, ...]
    issue_month: str | None = None  # ties the message to an issue (custom args, X- headers)
    list_id: str | None = None  # a list message (List-Id, Precedence: bulk); None: one-off mail
    variant: str | None = None  # the issue variant's key (None: the default) for Feedback-ID
