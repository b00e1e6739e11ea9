"""The transport contract: open, deliver batches of recipients, close.

A send run (``newsletter.send``) owns the loop and the ledger; a transport only delivers one
``OutgoingMessage`` (already rendered, with placeholders) to its recipients, personalising each
copy by string substitution. Adding a provider is one new module (a ``Transport`` subclass and
its ``Provider`` declaration) plus one line in ``registry.BUILT_IN``: docs/adding-a-transport.md.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import ClassVar, Self

from newsletter.errors import NewsletterError
from newsletter.models import OutgoingMessage, Recipient

log = logging.getLogger(__name__)

REASON_MAX = 300  # characters of a "could not be built" reason


@dataclass(frozen=True)
class DeliveryResult:
    """What the transport says about one recipient of a batch."""

    recipient: Recipient
    accepted: bool
    provider_message_id: str | None = None  # e.g. SendGrid's X-Message-Id for the batch
    error: str | None = None  # why it was refused (accepted is False)


class Transport(ABC):
    """Delivers messages. ``send_batch`` takes at most ``max_batch`` recipients per call.

    Raises ``TemporaryDeliveryError`` when the whole batch may be retried later (after the
    transport's own bounded retries) and ``PermanentDeliveryError`` when the run must stop.
    """

    name: ClassVar[str]
    max_batch: int = 1
    # Batches the run may hand to send_batch at once, from as many threads (1: one at a time).
    concurrency: int = 1

    def open(self) -> None:
        """Connect or prepare (log in, create folders); called once before the first batch."""

    def close(self) -> None:
        """Release connections; called once, also after a failure."""

    @abstractmethod
    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        """Deliver ``message`` to each of its recipients; one result per recipient."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def split_batches(message: OutgoingMessage, size: int) -> Iterator[OutgoingMessage]:
    """The same message in parts of at most ``size`` recipients (e.g. ``transport.max_batch``)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(message.recipients), size):
        yield replace(message, recipients=message.recipients[start : start + size])


def not_built(recipient: Recipient, err: Exception) -> DeliveryResult:
    """The failed result of a recipient whose message could not be built: one line, no address.

    Only that reader fails; the transport goes on with the rest of the batch.
    """
    reason = str(err) if isinstance(err, NewsletterError) else f"{type(err).__name__}: {err}"
    for shown in {recipient.email, repr(recipient.email)[1:-1]}:
        reason = reason.replace(shown, "[address]")
    reason = " ".join(reason.split())[:REASON_MAX]
    log.warning("subscriber %s: message not built: %s", recipient.subscriber_id, reason)
    return DeliveryResult(
        recipient, accepted=False, error=f"the message could not be built: {reason}"
    )
