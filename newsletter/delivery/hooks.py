"""The optional hooks a provider may offer, said in the program's words, not the provider's.

``SuppressionPull``: pull the provider's suppression lists into the subscriber list
(``newsletter subscribers sync``, and the scheduler before each send). ``Webhook``: verify the
provider's event posts and turn each event into an ``InboundEvent`` that ``newsletter.web.events``
applies. A provider without a hook has ``None`` in its ``Provider`` entry: the CLI says so and the
webhook route answers 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from newsletter.models import SubscriberStatus

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.store.subscribers import SubscriberStore

ProgressCallback = Callable[[str, int], None]  # (list name, records fetched so far)


@dataclass
class ListReport:
    """What one of the provider's suppression lists did to the subscriber list."""

    name: str
    fetched: int = 0  # records the provider returned
    suppressed: list[str] = field(default_factory=list)  # addresses changed by this sync
    already: int = 0  # on our list and suppressed already (or this record was applied before)
    unknown: int = 0  # not on our list: ignored


@dataclass(frozen=True)
class SyncReport:
    """The result of one sync, list by list."""

    lists: tuple[ListReport, ...]

    @property
    def changed(self) -> int:
        return sum(len(report.suppressed) for report in self.lists)

    @property
    def fetched(self) -> int:
        return sum(report.fetched for report in self.lists)

    def summary(self) -> str:
        parts = [
            f"{r.name}: {r.fetched} fetched, {len(r.suppressed)} suppressed now, "
            f"{r.already} already, {r.unknown} not on the list"
            for r in self.lists
        ]
        return "; ".join(parts)


class SuppressionPull(Protocol):
    """Applies the provider's suppression lists to ``store``; idempotent; ``DeliveryError`` on failure."""

    def __call__(
        self,
        settings: Settings,
        store: SubscriberStore,
        *,
        progress: ProgressCallback | None = None,
    ) -> SyncReport: ...


@dataclass(frozen=True)
class LedgerUpdate:
    """What an event says about one delivery: delivered, or failed with ``error``."""

    delivered: bool
    at: datetime
    issue: str  # the issue month the provider echoes back, "" when it does not
    provider_message_id: str
    error: str = ""


@dataclass(frozen=True)
class InboundEvent:
    """One provider event about one reader: the status it asks for and/or a ledger update."""

    email: str
    subscriber_id: int | None = None  # the id we sent along, when the provider echoes it back
    status: SubscriberStatus | None = None  # e.g. BOUNCED; None when the event sets none
    reason: str = ""  # recorded with the status change
    external_id: str | None = None  # the provider's id of the event: applied at most once
    ledger: LedgerUpdate | None = None


class SignatureError(Exception):
    """The request is not a fresh, correctly signed event post of the provider."""


class Verifier(Protocol):
    """Checks one post: headers first (before the body is read), then the signature of the body."""

    def check_headers(self, headers: Mapping[str, str]) -> None:
        """Raise ``SignatureError`` unless the signing headers are there, well-formed and fresh."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless the headers sign ``body``."""


class Webhook(Protocol):
    """A provider's event webhook: how posts are verified and what their events mean."""

    title: str  # as people read it, for the log
    max_body: int  # bytes: a larger post is refused (413) without being read whole

    def verifier(self, settings: Settings) -> Verifier:
        """The verifier of the configured key; ``ConfigError`` when none is set or it is unusable."""

    def startup_note(self, settings: Settings) -> str | None:
        """``ConfigError`` for an unusable key; a note when none is set (the route answers 503)."""

    def events(self, items: Sequence[Mapping[str, Any]]) -> list[InboundEvent | None]:
        """Each posted event in our words; None for kinds that change nothing here."""
