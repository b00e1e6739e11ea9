"""The test's open database per URL, as the CLI opens one per process; closed after each test."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.store.database import Database

_OPEN: dict[str, Database] = {}


def db(settings: Settings) -> Database:
    """The open ``Database`` of ``settings`` (one per URL for the test; closed when it ends)."""
    found = _OPEN.get(settings.database_url)
    if found is None:
        found = _OPEN[settings.database_url] = Database.open(settings.database_url)
    return found


def close_all() -> None:
    """Close every database the test opened through ``db``."""
    for database in _OPEN.values():
        database.close()
    _OPEN.clear()
