"""Why a look-up failed; apart from ``client`` so ``compare`` needs no HTTP library to load."""

from __future__ import annotations


class NotFound(Exception):
    """The DOI is not known (HTTP 404)."""


class Unreachable(Exception):
    """No answer: no network, a timeout, or the service failed every attempt."""
