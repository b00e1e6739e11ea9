"""``delivery.sendgrid:`` in schedule.yaml and SendGrid's secrets from the environment (no SendGrid import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.config import Section, checked, parse_bool, parse_url

MAX_BATCH = 1000  # personalizations in one Mail Send request, per SendGrid's limits
CONCURRENCY = 8  # Mail Send requests in flight at once, by default
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class SendGridSettings:
    """Where the API is, how many recipients a request takes, and the keys."""

    host: str  # NEWSLETTER_SENDGRID_HOST overrides
    batch_size: int  # ≤ 1000
    sandbox: bool
    concurrency: int = CONCURRENCY  # Mail Send requests in flight at once (one connection each)
    api_key: str | None = field(default=None, repr=False)  # SENDGRID_API_KEY
    webhook_key: str | None = field(default=None, repr=False)  # NEWSLETTER_SENDGRID_WEBHOOK_KEY


def parse_settings(section: Section, root: Path, env: Mapping[str, str]) -> SendGridSettings:
    """Host (or ``NEWSLETTER_SENDGRID_HOST``), batch size and sandbox, plus the two keys."""
    sec = section.expect("host", "batch_size", "sandbox", "concurrency")
    host = sec.text("host", "https://api.sendgrid.com")
    host = env.get("NEWSLETTER_SENDGRID_HOST") or host
    return SendGridSettings(
        host=checked(sec, "host", host, parse_url, "an https:// API address"),
        batch_size=checked(
            sec,
            "batch_size",
            sec.scalar("batch_size", MAX_BATCH),
            _batch,
            f"a whole number from 1 to {MAX_BATCH}",
        ),
        sandbox=checked(sec, "sandbox", sec.scalar("sandbox", False), parse_bool, "true or false"),
        concurrency=checked(
            sec,
            "concurrency",
            sec.scalar("concurrency", CONCURRENCY),
            _concurrency,
            f"a whole number from 1 to {MAX_CONCURRENCY}",
        ),
        api_key=env.get("SENDGRID_API_KEY") or None,
        webhook_key=env.get("NEWSLETTER_SENDGRID_WEBHOOK_KEY") or None,
    )


def _batch(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH:
        raise ValueError(value)
    return value


def _concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(value)
    return value
