"""Named, ordered schema migrations, applied automatically when the database is opened.

Append a new ``(name, function)`` to ``MIGRATIONS`` to change the schema; never edit one that
has shipped. Each runs in its own transaction and is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from newsletter.store import schema


def _initial(conn: sa.Connection) -> None:
    tables = [
        schema.subscribers,
        schema.subscriber_events,
        schema.sends,
        schema.deliveries,
        schema.schedule_claims,
    ]
    schema.metadata.create_all(conn, tables=tables)


MIGRATIONS: list[tuple[str, Callable[[sa.Connection], None]]] = [
    ("0001_initial", _initial),
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
    schema.metadata.create_all(engine, tables=[schema.schema_migrations])
    applied_now: list[str] = []
    with engine.begin() as conn:
        done = set(conn.scalars(sa.select(schema.schema_migrations.c.name)))
    for name, apply in MIGRATIONS:
        if name in done:
            continue
        with engine.begin() as conn:
            apply(conn)
            conn.execute(
                schema.schema_migrations.insert().values(name=name, applied_at=datetime.now(UTC))
            )
        applied_now.append(name)
    return applied_now
