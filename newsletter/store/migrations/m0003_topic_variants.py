"""0003: the reader's topic mode on ``subscribers`` and the variant sent on ``deliveries``."""

from __future__ import annotations

import sqlalchemy as sa

_ADD = (
    "ALTER TABLE subscribers ADD COLUMN topic_mode VARCHAR(10) DEFAULT 'all' NOT NULL",
    "ALTER TABLE deliveries ADD COLUMN variant VARCHAR(200)",
)


def apply(conn: sa.Connection) -> None:
    """Add the columns: every existing reader reads ``all``; earlier rows have no variant."""
    for statement in _ADD:
        conn.execute(sa.text(statement))
