"""The exception tree of the package.

Every error a user can cause is one of these, so the CLI and the web app can turn it into a
one-line message instead of a traceback::

    NewsletterError
    ├── ConfigError               schedule.yaml or environment is wrong       (exit 2)
    ├── IssueError                an issue file has errors (carries findings) (exit 1)
    ├── IssueNotFoundError        no issue file for that month or path        (exit 2)
    ├── RenderError               templates, MJML or inlining failed          (exit 1)
    ├── SubscriberError           a subscriber operation was refused          (exit 1)
    │   └── ImportFileError       a CSV file cannot be read at all            (exit 1)
    ├── TokenError                a signed link token is invalid or expired   (exit 1)
    ├── SendError                 a send run refused to start or was stopped  (exit 1)
    │   ├── AlreadySentError      the issue went out already
    │   ├── SendBusyError         another live run is sending the issue now
    │   └── LeaseLostError        this run stalled, another took over: it stopped
    ├── StoreError                the database failed                         (exit 1)
    │   ├── DatabaseUnavailableError  cannot open, create, reach or write it
    │   └── CorruptDatabaseError      the file is damaged or not a database
    └── DeliveryError             a transport failed                          (exit 1)
        ├── TemporaryDeliveryError   worth retrying (429, 5xx outages, timeouts, refused connections)
        └── PermanentDeliveryError   not worth retrying (400/401/403/413, 501/505, bad credentials)

Third-party exceptions are translated into these where the library is imported,
with ``raise … from err`` (SQLAlchemy's in one place: ``newsletter.store.failures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.models import Finding


class NewsletterError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(NewsletterError):
    """schedule.yaml or an environment variable is missing, malformed or unknown."""

    exit_code = 2


class IssueError(NewsletterError):
    """An issue file has errors; ``findings`` holds all of them (errors and warnings)."""

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


class IssueNotFoundError(NewsletterError):
    """The issue asked for (a month ``YYYY-MM`` or a path) has no file: a usage mistake."""

    exit_code = 2


class RenderError(NewsletterError):
    """Rendering an issue failed (template, MJML or CSS inlining)."""


class SubscriberError(NewsletterError):
    """A subscriber-list operation was refused (unknown address, invalid email …)."""


class InvalidNameError(SubscriberError):
    """A name was refused; ``problem`` says why without a subject, for messages that say where."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"the name {problem}")
        self.problem = problem


class OptionValueError(SubscriberError):
    """A value given on the command line (``--name``, ``--topics``, an address) was refused: a
    usage mistake, so exit code 2 as click's own usage errors."""

    exit_code = 2


class ImportFileError(SubscriberError):
    """A CSV file cannot be imported at all (no ``email`` column, not UTF-8 …)."""


class TokenError(NewsletterError):
    """A signed link token is malformed, forged, for another purpose, or expired."""


class SendError(NewsletterError):
    """A send run refused to start, or stopped."""


class AlreadySentError(SendError):
    """The issue has been sent already; a second send would duplicate it."""


class SendBusyError(SendError):
    """Another live run holds the issue's send lease: this one did nothing."""


class LeaseLostError(SendError):
    """This run's lease was taken over (it stalled too long): it may write nothing more."""


class StoreError(NewsletterError):
    """The database failed: the message names it (password hidden) and what to do."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be opened, created, reached or written (path, permissions, server)."""


class CorruptDatabaseError(StoreError):
    """The database file is damaged, or is not a SQLite database at all."""


class DeliveryError(NewsletterError):
    """A transport could not deliver."""


class TemporaryDeliveryError(DeliveryError):
    """A failure worth retrying later: rate limits, server errors, timeouts, refused connections."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying will not fix: bad request, bad credentials, payload too large."""
