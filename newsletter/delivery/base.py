"""The transport contract: open, deliver batches of recipients, close.

A send run (``newsletter.send``) owns the loop and the ledger; a transport only delivers one
``OutgoingMessage`` (already rendered, with placeholders) to its recipients, personalising each
copy by string substitution. Adding a provider is one new module (a ``Transport`` subclass and
its ``Provider`` declaration) plus one line in ``registry.BUILT_IN``: docs/adding-a-transport.md.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import ClassVar, Self, overload

from newsletter.errors import (
    DeliveryError,
    NewsletterError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
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


class BatchResults(Sequence[DeliveryResult]):
    """A batch's outcome as one value: ``accepted`` all accepted under one provider id, and the
    ``failed`` results of the few that were not (each with its reason).

    Still a sequence of one ``DeliveryResult`` per recipient (made when read), so the transport
    contract holds; the ledger reads ``uniform`` instead of looking at 1,000 results.
    """

    __slots__ = ("accepted", "failed", "provider_message_id")

    def __init__(
        self,
        accepted: Sequence[Recipient],
        provider_message_id: str | None,
        failed: Sequence[DeliveryResult] = (),
    ) -> None:
        self.accepted = accepted
        self.provider_message_id = provider_message_id
        self.failed = failed

    @property
    def uniform(self) -> bool:
        """Every recipient accepted, under the one provider id."""
        return not self.failed

    @property
    def accepted_count(self) -> int:
        return len(self.accepted)

    def __len__(self) -> int:
        return len(self.accepted) + len(self.failed)

    @overload
    def __getitem__(self, index: int) -> DeliveryResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[DeliveryResult]: ...

    def __getitem__(self, index: int | slice) -> DeliveryResult | Sequence[DeliveryResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index < len(self.accepted):
            return DeliveryResult(
                self.accepted[index], accepted=True, provider_message_id=self.provider_message_id
            )
        return self.failed[index - len(self.accepted)]

    def __iter__(self) -> Iterator[DeliveryResult]:
        mid = self.provider_message_id
        for recipient in self.accepted:
            yield DeliveryResult(recipient, accepted=True, provider_message_id=mid)
        yield from self.failed


class PartialDelivery(DeliveryError):
    """A batch stopped part-way (raised as ``PartialTemporaryError`` or ``PartialPermanentError``).

    ``answered`` are the results of the recipients the server answered (recorded as usual);
    ``unsent`` the recipients it was never given, or whose message failed: given back to the
    ledger so ``--resume`` sends them. A transport that raises a plain error gives the batch
    back whole.
    """

    def __init__(
        self,
        message: str,
        answered: Sequence[DeliveryResult] = (),
        unsent: Sequence[Recipient] = (),
    ) -> None:
        super().__init__(message)
        self.answered = answered
        self.unsent = unsent


class PartialTemporaryError(PartialDelivery, TemporaryDeliveryError):
    """A batch stopped part-way by a temporary failure."""


class PartialPermanentError(PartialDelivery, PermanentDeliveryError):
    """A batch stopped part-way by a permanent failure."""


def partial(
    err: DeliveryError, answered: Sequence[DeliveryResult], unsent: Sequence[Recipient]
) -> PartialDelivery:
    """``err`` (of the same kind, with the same message) carrying what the batch got done."""
    kind = (
        PartialPermanentError if isinstance(err, PermanentDeliveryError) else PartialTemporaryError
    )
    made = kind(str(err), answered, unsent)
    made.__cause__ = err
    return made


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
    def send_batch(self, message: OutgoingMessage) -> Sequence[DeliveryResult]:
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
