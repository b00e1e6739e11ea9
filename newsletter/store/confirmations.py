"""Confirmation emails per address per day: a limit that must hold across several `serve` processes.

The count lives in the database as ``subscriber_events`` rows of kind ``confirmation_sent`` (no
new table). A claim first touches the subscriber's row, which takes SQLite's write lock and
PostgreSQL's row lock, so two processes claiming at once are serialised and cannot both see
"2 sent" and both send a third.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from newsletter.store.schema import subscriber_events, subscribers
from newsletter.values.clock import now_utc

CONFIRMATION_SENT = "confirmation_sent"
CONFIRMATIONS_PER_DAY = 3
DAY = timedelta(days=1)


def claim_confirmation(
    engine: sa.Engine,
    subscriber_id: int,
    *,
    limit: int = CONFIRMATIONS_PER_DAY,
    window: timedelta = DAY,
) -> bool:
    """Record one confirmation email for ``subscriber_id``; False when ``limit`` were sent in ``window``."""
    at = now_utc()
    with engine.begin() as conn:
        touched = conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id)
            .values(updated_at=subscribers.c.updated_at)
        )
        if touched.rowcount != 1:
            return False
        sent = conn.scalar(
            sa.select(sa.func.count())
            .select_from(subscriber_events)
            .where(
                subscriber_events.c.subscriber_id == subscriber_id,
                subscriber_events.c.kind == CONFIRMATION_SENT,
                subscriber_events.c.at > at - window,
            )
        )
        if (sent or 0) >= limit:
            return False
        conn.execute(
            subscriber_events.insert().values(
                subscriber_id=subscriber_id,
                at=at,
                kind=CONFIRMATION_SENT,
                reason="confirmation email requested on the subscribe form",
                source="web",
            )
        )
    return True
