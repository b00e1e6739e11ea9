"""Named, ordered schema migrations, applied automatically when the database is opened.

Append a new ``(name, function)`` to ``MIGRATIONS`` to change the schema; never edit one that
has shipped. Each runs in its own transaction and is recorded in ``schema_migrations``.
"""

from __future__ import annotations

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


def migrate(engine: sa.Engine) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
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
