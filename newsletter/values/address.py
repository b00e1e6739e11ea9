"""Email addresses: one rule for every entry point, and the only importer of ``email_validator``.

The subscriber list (CLI, CSV import, subscribe form), the sender in schedule.yaml and
``send --test-to`` all check an address with ``normalise_address``. Syntax only: no DNS lookup, so
checking is fast and works offline. A leaf module: it imports nothing of the package.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["AddressError", "normalise_address"]

_SHOWN = 80  # longer input is shortened in a message: it may be a pasted file


class AddressError(ValueError):
    """Text that is not an email address; the message quotes it and says why."""


def normalise_address(raw: str | None) -> str:
    """The address trimmed and checked (syntax only); the domain comes back lower-cased."""
    text = (raw or "").strip()
    if not text:
        raise AddressError("the email address is empty")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise AddressError(f"{_shown(text)!r} is not a valid email address: {err}") from err


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:60] + "…"
