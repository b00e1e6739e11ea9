"""What a provider reports later about sent copies (delivered, bounced, dropped), onto the ledger.

Provider-neutral: the provider's webhook module turns its own events into ``DeliveryEvent``\\ s.
Updates are conditional (``delivered_at`` stamped once, ``failed`` set once), so a replayed
event changes nothing, and a batch of events shares one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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


def _rows(event: DeliveryEvent) -> sa.Select[tuple[int]]:
    query = sa.select(deliveries.c.id).where(deliveries.c.subscriber_id == event.subscriber_id)
    if event.email:
        query = query.where(sa.func.lower(deliveries.c.email) == event.email.lower())
    if event.issue:
        in_issue = sa.select(sends.c.id).where(sends.c.issue == event.issue)
        return query.where(deliveries.c.send_id.in_(in_issue))
    if not event.provider_message_id:
        return query.where(sa.false())
    return query.where(deliveries.c.provider_message_id == event.provider_message_id)


def _update(event: DeliveryEvent, now: datetime) -> sa.Update:
    rows = _rows(event)
    if event.delivered:
        return (
            deliveries.update()
            .where(deliveries.c.id.in_(rows), deliveries.c.delivered_at.is_(None))
            .values(delivered_at=event.at, updated_at=now)
        )
    return (
        deliveries.update()
        .where(deliveries.c.id.in_(rows), deliveries.c.status != LedgerStatus.FAILED.value)
        .values(status=LedgerStatus.FAILED.value, error=event.error[:ERROR_MAX], updated_at=now)
    )


def apply_delivery_events(
    engine: sa.Engine, events: Sequence[DeliveryEvent], now: datetime
) -> list[bool]:
    """Apply each event in one transaction; for each, whether it changed a ledger row."""
    if not events:
        return []
    with engine.begin() as conn:
        return [conn.execute(_update(event, now)).rowcount > 0 for event in events]
