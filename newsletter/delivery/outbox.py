"""The outbox transport: every message written to a local Maildir that mail clients can open.

The default in the shipped ``schedule.yaml``, so a fresh checkout "sends" with no account
anywhere. ``mailbox.Maildir`` writes each message to ``tmp/`` and renames it into ``new/``, so a
reader never sees half a message.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from newsletter.config import OutboxSettings
from newsletter.delivery.base import DeliveryResult, Transport, not_built
from newsletter.errors import PermanentDeliveryError
from newsletter.mime import build_message, check_message
from newsletter.models import OutgoingMessage, Recipient


class OutboxTransport(Transport):
    """Writes one file per recipient into ``settings.path`` (a Maildir: cur/, new/, tmp/)."""

    name: ClassVar[str] = "outbox"
    max_batch = 500

    def __init__(self, settings: OutboxSettings) -> None:
        self.path = Path(settings.path)
        self._maildir: mailbox.Maildir | None = None

    def open(self) -> None:
        """Create the Maildir (and its parents) if missing."""
        if self.path.exists() and not self.path.is_dir():
            raise PermanentDeliveryError(
                f"delivery.outbox.path: {self.path} exists and is not a folder"
            )
        try:
            for folder in ("tmp", "new", "cur"):  # also completes an existing, empty folder
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            self._maildir = mailbox.Maildir(self.path, create=False)
        except OSError as err:
            raise PermanentDeliveryError(
                f"delivery.outbox.path: cannot create the Maildir {self.path}: {err.strerror}"
            ) from err

    def close(self) -> None:
        if self._maildir is not None:
            self._maildir.close()
            self._maildir = None

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        if self._maildir is None:
            self.open()
        assert self._maildir is not None
        # Build every message first: a bad From or Subject refuses the batch before anything is
        # written; a reader whose own message cannot be built fails alone.
        check_message(message)
        now = datetime.now(UTC)
        built: list[tuple[Recipient, bytes]] = []
        failed: list[DeliveryResult] = []
        for recipient in message.recipients:
            try:
                built.append((recipient, _file_bytes(message, recipient, now)))
            except Exception as err:  # only this reader's message: the others still go
                failed.append(not_built(recipient, err))
        results: list[DeliveryResult] = []
        try:
            for recipient, data in built:
                key = self._maildir.add(data)
                results.append(DeliveryResult(recipient, accepted=True, provider_message_id=key))
        except OSError as err:
            self._discard(results)
            raise PermanentDeliveryError(
                f"cannot write to the outbox {self.path}: {err.strerror or err}"
            ) from err
        return [*results, *failed]

    def _discard(self, results: list[DeliveryResult]) -> None:
        """Take back a failed batch's messages: a batch is written whole or not at all."""
        assert self._maildir is not None
        for result in results:
            if result.provider_message_id is not None:
                self._maildir.discard(result.provider_message_id)


def _file_bytes(message: OutgoingMessage, recipient: Recipient, date: datetime) -> bytes:
    """One reader's message as the file holds it: LF line ends, as Maildir readers expect."""
    mail = build_message(message, recipient, date=date)
    return mail.as_bytes(policy=mail.policy.clone(linesep="\n"))  # the SMTP policy writes CRLF
