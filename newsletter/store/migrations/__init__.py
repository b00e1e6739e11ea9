"""Named, ordered schema migrations, applied automatically when the database is opened.

To change the schema: change ``store/schema.py``, then add a module ``mNNNN_what.py`` here with
an ``apply(conn)`` that makes the same change with explicit DDL (``ALTER TABLE …``, a frozen
``sa.Table``), and append it to ``MIGRATIONS``. Never edit one that has shipped, and never build
tables from ``store/schema.py`` in a migration. ``tests/test_migrations.py`` checks that a fresh
database and an upgraded 0.1.0 one both end up exactly as ``store/schema.py`` describes.
Each migration runs in its own transaction and is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from newsletter.store.migrations import (
    m0001_initial,
    m0002_send_lease,
    m0003_topic_variants,
)
from newsletter.values.clock import now_utc

MIGRATIONS: list[tuple[str, Callable[[sa.Connection], None]]] = [
    ("0001_initial", m0001_initial.apply),
    ("0002_send_lease", m0002_send_lease.apply),
    ("0003_topic_variants", m0003_topic_variants.apply),
]


def migrate(engine: sa.Engine, attempts: int = 5) -> list[str]:
    """Apply every migration not yet applied; return the names applied now.

    Two processes opening a new database at once race here (one sees "table already exists" or
    a duplicate migration row); the loser re-reads what is applied and carries on.
    """
    for attempt in range(attempts):
        try:
            return _migrate_once(engine)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return []


def _migrate_once(engine: sa.Engine) -> list[str]:
    bookkeeping = m0001_initial.schema_migrations
    bookkeeping.create(engine, checkfirst=True)
    applied_now: list[str] = []
    with engine.begin() as conn:
        done = set(conn.scalars(sa.select(bookkeeping.c.name)))
    for name, apply in MIGRATIONS:
        if name in done:
            continue
        with engine.begin() as conn:
            apply(conn)
            conn.execute(bookkeeping.insert().values(name=name, applied_at=now_utc()))
        applied_now.append(name)
    return applied_now
