"""Email addresses: one rule for every entry point, and the only importer of ``email_validator``.

The subscriber list (CLI, CSV import, subscribe form), the sender in schedule.yaml and
``send --test-to`` all check an address with ``normalise_address``. Syntax only: no DNS lookup, so
checking is fast and works offline. A leaf module: it imports nothing of the package.

The common case takes a fast path that gives exactly ``email_validator``'s answer (see
tests/test_address_fast_path.py, which checks that with generated addresses and near-misses): a
plain ASCII dot-atom local part at an ASCII domain of letters, digits and hyphens under a
top-level domain of letters. The fast path only ever accepts; anything else, including every
address that is not valid, goes to ``email_validator``, which says why. ``email_validator`` is
imported on the first such address, not at start-up.
"""

from __future__ import annotations

import re

__all__ = ["AddressError", "normalise_address"]

_SHOWN = 80  # longer input is shortened in a message: it may be a pasted file

# email_validator's limits (rfc_constants) and special-use names (SPECIAL_USE_DOMAIN_NAMES);
# tests/test_address_fast_path.py checks them against the installed email_validator.
EMAIL_MAX_LENGTH = 254
LOCAL_PART_MAX_LENGTH = 64
DOMAIN_MAX_LENGTH = 253
SPECIAL_USE_DOMAIN_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
# A dot-atom, then labels of 1–63 letters/digits/hyphens with no hyphen first or last, then a
# TLD of letters; ``_fast`` also refuses any "--" (so no Punycode "xn--" and none of IDNA's
# "ab--" rule) and the special-use names.
_FAST = re.compile(
    rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}"
)


class AddressError(ValueError):
    """Text that is not an email address; the message quotes it and says why."""


def normalise_address(raw: str | None) -> str:
    """The address trimmed and checked (syntax only); the domain comes back lower-cased."""
    text = (raw or "").strip()
    if not text:
        raise AddressError("the email address is empty")
    fast = _fast(text)
    if fast is not None:
        return fast
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise AddressError(f"{_shown(text)!r} is not a valid email address: {err}") from err


def _fast(text: str) -> str | None:
    """``email_validator``'s normalised address for a plain ASCII address, or None to ask it."""
    if len(text) > EMAIL_MAX_LENGTH or not text.isascii() or _FAST.fullmatch(text) is None:
        return None
    local, _, domain = text.partition("@")
    domain = domain.lower()
    if len(local) > LOCAL_PART_MAX_LENGTH or len(domain) > DOMAIN_MAX_LENGTH or "--" in domain:
        return None
    for special in SPECIAL_USE_DOMAIN_NAMES:
        if domain == special or domain.endswith("." + special):
            return None
    return f"{local}@{domain}"


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:60] + "…"
