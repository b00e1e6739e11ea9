"""Transports that deliver rendered messages: one module per variant (outbox, smtp, sendgrid, memory).

``base.Transport`` owns the contract; ``get_transport`` picks one by name from the settings.
Each module is imported only when chosen, so e.g. the outbox never loads the SendGrid library.
"""

from __future__ import annotations

from newsletter.config import DeliverySettings
from newsletter.delivery.base import DeliveryResult, Transport
from newsletter.errors import ConfigError

TRANSPORT_NAMES = ("outbox", "smtp", "sendgrid", "memory")

__all__ = ["TRANSPORT_NAMES", "DeliveryResult", "Transport", "get_transport"]


def get_transport(name: str, delivery: DeliverySettings) -> Transport:
    """The transport called ``name``, configured from ``delivery`` (not yet opened)."""
    if name == "outbox":
        from newsletter.delivery.outbox import OutboxTransport

        return OutboxTransport(delivery.outbox)
    if name == "smtp":
        from newsletter.delivery.smtp import SmtpTransport

        return SmtpTransport(delivery.smtp)
    if name == "sendgrid":
        from newsletter.delivery.sendgrid import SendGridTransport

        return SendGridTransport(delivery.sendgrid)
    if name == "memory":
        from newsletter.delivery.memory import MemoryTransport

        return MemoryTransport()
    raise ConfigError(
        f"unknown transport {name!r}: expected one of {', '.join(TRANSPORT_NAMES[:3])} "
        "(delivery.transport in schedule.yaml, or --transport)"
    )
