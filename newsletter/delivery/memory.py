"""A transport that keeps messages in a list: for tests of the send run, never for real mail."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from newsletter.delivery.base import DeliveryResult, Transport, not_built
from newsletter.delivery.registry import Provider
from newsletter.errors import DeliveryError
from newsletter.mime import check_address
from newsletter.models import OutgoingMessage, Recipient


class MemoryTransport(Transport):
    """Records ``(message, recipient)`` pairs; can refuse addresses or fail whole batches on cue."""

    name: ClassVar[str] = "memory"

    def __init__(self, max_batch: int = 100) -> None:
        self.max_batch = max_batch
        self.delivered: list[tuple[OutgoingMessage, Recipient]] = []
        self.batches: list[OutgoingMessage] = []  # every batch handed over, delivered or not
        self.refuse: dict[str, str] = {}  # email (lower case) → error for that recipient
        self.failures: list[DeliveryError] = []  # raised by the next batches, one each
        self.fail_after: int | None = None  # fail every batch once this many were delivered
        self.failure: Callable[[], DeliveryError] | None = None  # what fail_after raises
        self.opened = 0
        self.closed = 0

    def fail_next(self, *errors: DeliveryError) -> None:
        """Raise these from the next ``send_batch`` calls, one per call."""
        self.failures.extend(errors)

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        if len(message.recipients) > self.max_batch:
            raise ValueError(f"batch of {len(message.recipients)} > max_batch {self.max_batch}")
        self.batches.append(message)
        if self.failures:
            raise self.failures.pop(0)
        if self.fail_after is not None and len(self.delivered) >= self.fail_after:
            raise (self.failure or _default_failure)()
        results = []
        for number, recipient in enumerate(message.recipients):
            error = self.refuse.get(recipient.email.lower())
            if error is not None:
                results.append(DeliveryResult(recipient, accepted=False, error=error))
                continue
            try:  # as every real transport: a name or address no To line can hold fails alone
                check_address("To", recipient.name, recipient.email)
            except Exception as err:
                results.append(not_built(recipient, err))
                continue
            self.delivered.append((message, recipient))
            results.append(
                DeliveryResult(
                    recipient,
                    accepted=True,
                    provider_message_id=f"mem-{len(self.batches)}-{number}",
                )
            )
        return results

    @property
    def emails(self) -> list[str]:
        """The addresses delivered to, in order."""
        return [recipient.email for _, recipient in self.delivered]


def _default_failure() -> DeliveryError:
    from newsletter.errors import TemporaryDeliveryError

    return TemporaryDeliveryError("memory transport told to fail")


PROVIDER = Provider("memory", MemoryTransport, title="the memory transport", selectable=False)
