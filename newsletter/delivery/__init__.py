"""Transports that deliver rendered messages: one module (or package) per provider.

``base.Transport`` owns the contract; ``registry`` knows every provider by name (``get_transport``
picks one from the settings). Light on purpose: ``newsletter.config`` imports the registry, and
each transport module is imported only when chosen, so the outbox never loads the SendGrid library.
"""

from __future__ import annotations

from newsletter.delivery.base import DeliveryResult, Transport
from newsletter.delivery.registry import Provider, get_provider, get_transport, names, register

__all__ = [
    "DeliveryResult",
    "Provider",
    "Transport",
    "get_provider",
    "get_transport",
    "names",
    "register",
]
