"""What a provider reports later about sent copies (delivered, bounced, dropped), onto the ledger.

Provider-neutral: the provider's webhook module turns its own events into ``DeliveryEvent``\\ s.
Updates are conditional (``delivered_at`` stamped once, ``failed`` set once), so a replayed
event changes nothing, and a batch of events shares one transaction. Each shape of event has one
UPDATE with bound parameters, built once (SQLAlchemy then reuses its compiled form).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.models import LedgerStatus
from newsletter.store.schema import deliveries, sends

ERROR_MAX = 1000  # deliveries.error length


@dataclass(frozen=True)
class DeliveryEvent:
    """One report about one subscriber's copy.

    The row is found by ``issue`` when the provider echoes it back, else by the provider's
    message id; a given ``email`` must match the row's too (a forged id matches nothing).
    """

    subscriber_id: int
    delivered: bool  # True: delivered; False: failed for good (bounce, drop) with ``error``
    at: datetime
    email: str = ""
    issue: str = ""
    provider_message_id: str = ""
    error: str = ""


@functools.cache
def _statement(delivered: bool, by_email: bool, by_issue: bool) -> sa.Update:
    """The conditional UPDATE for one shape of event, with bound parameters: built once."""
    rows = sa.select(deliveries.c.id).where(deliveries.c.subscriber_id == sa.bindparam("p_sid"))
    if by_email:
        rows = rows.where(sa.func.lower(deliveries.c.email) == sa.bindparam("p_email"))
    if by_issue:
        in_issue = sa.select(sends.c.id).where(sends.c.issue == sa.bindparam("p_issue"))
        rows = rows.where(deliveries.c.send_id.in_(in_issue))
    else:
        rows = rows.where(deliveries.c.provider_message_id == sa.bindparam("p_message"))
    now = sa.bindparam("p_now", type_=deliveries.c.updated_at.type)
    if delivered:
        return (
            deliveries.update()
            .where(deliveries.c.id.in_(rows), deliveries.c.delivered_at.is_(None))
            .values(
                delivered_at=sa.bindparam("p_at", type_=deliveries.c.delivered_at.type),
                updated_at=now,
            )
        )
    return (
        deliveries.update()
        .where(deliveries.c.id.in_(rows), deliveries.c.status != LedgerStatus.FAILED.value)
        .values(status=LedgerStatus.FAILED.value, error=sa.bindparam("p_error"), updated_at=now)
    )


def _apply(conn: sa.Connection, event: DeliveryEvent, now: datetime) -> bool:
    if not event.issue and not event.provider_message_id:
        return False  # nothing to find the row by: it matches nothing
    statement = _statement(event.delivered, bool(event.email), bool(event.issue))
    parameters: dict[str, Any] = {"p_sid": event.subscriber_id, "p_now": now}
    if event.email:
        parameters["p_email"] = event.email.lower()
    if event.issue:
        parameters["p_issue"] = event.issue
    else:
        parameters["p_message"] = event.provider_message_id
    if event.delivered:
        parameters["p_at"] = event.at
    else:
        parameters["p_error"] = event.error[:ERROR_MAX]
    return conn.execute(statement, parameters).rowcount > 0


def apply_delivery_events(
    engine: sa.Engine, events: Sequence[DeliveryEvent], now: datetime
) -> list[bool]:
    """Apply each event in one transaction; for each, whether it changed a ledger row."""
    if not events:
        return []
    with engine.begin() as conn:
        return [_apply(conn, event, now) for event in events]
