"""SendGrid, all in one place: sending (``transport``), its event webhook (``webhook``) and its
suppression lists (``suppressions``). This file stays light (no SendGrid library, no
``cryptography``): it only declares the provider, whose parts load when first used.
"""

from __future__ import annotations

from newsletter.delivery.registry import Provider
from newsletter.delivery.sendgrid.settings import SendGridSettings, parse_settings

__all__ = ["PROVIDER", "SendGridSettings"]

PROVIDER = Provider(
    "sendgrid",
    "newsletter.delivery.sendgrid.transport:SendGridTransport",
    settings=parse_settings,
    title="SendGrid",
    suppressions="newsletter.delivery.sendgrid.suppressions:sync_suppressions",
    webhook="newsletter.delivery.sendgrid.webhook:WEBHOOK",
)
