"""0002: the send lease on ``sends`` and the resend count on ``deliveries``."""

from __future__ import annotations

import sqlalchemy as sa

_ADD = (
    "ALTER TABLE sends ADD COLUMN lease_run VARCHAR(40)",
    "ALTER TABLE sends ADD COLUMN lease_host VARCHAR(200)",
    "ALTER TABLE sends ADD COLUMN lease_pid INTEGER",
    "ALTER TABLE sends ADD COLUMN lease_since {timestamp}",
    "ALTER TABLE sends ADD COLUMN lease_heartbeat {timestamp}",
    "ALTER TABLE deliveries ADD COLUMN resent INTEGER DEFAULT '0' NOT NULL",
)


def apply(conn: sa.Connection) -> None:
    """Add the columns (a send left running by 0.1.0 simply has no lease holder)."""
    timestamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for statement in _ADD:
        conn.execute(sa.text(statement.format(timestamp=timestamp)))
