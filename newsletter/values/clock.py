"""The clock: the current time in UTC, and stored times made aware (SQLite hands back naive ones).

A leaf module: everything stored is UTC, so a naive datetime read back is UTC by definition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["as_utc", "aware", "now_utc"]


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """A stored time with its zone: a naive one is UTC; an aware one is returned as it is."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A time in UTC: a naive one is taken as UTC, an aware one converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
