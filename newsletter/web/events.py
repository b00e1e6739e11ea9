"""Apply verified provider events: suppress bounced, complaining and unsubscribing readers; update the ledger.

Events arrive in the program's words (``InboundEvent``, made by the provider's ``Webhook`` hook).
Every status change goes through ``SubscriberStore.set_status`` with the provider's event id
as ``external_id``, so a replayed event changes nothing twice; ledger updates are conditional
(only from another state), so they are idempotent too. A webhook never weakens a suppression:
a complaint is not turned back into a mere unsubscription.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from newsletter.delivery.hooks import InboundEvent
from newsletter.errors import SubscriberError
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.store.delivery_events import DeliveryEvent
from newsletter.store.subscribers import SubscriberStore, email_key

if TYPE_CHECKING:
    from newsletter.store.database import Database

log = logging.getLogger("newsletter.web.events")

# How strongly a status keeps a person off the list; a webhook only ever moves upwards.
_STRENGTH = {
    SubscriberStatus.PENDING: 0,
    SubscriberStatus.ACTIVE: 0,
    SubscriberStatus.UNSUBSCRIBED: 1,
    SubscriberStatus.BOUNCED: 2,
    SubscriberStatus.COMPLAINED: 3,
}
MAX_REASON = 400


@dataclass
class Outcome:
    """What one webhook post did, for the log and the response."""

    received: int = 0
    status_changes: int = 0
    ledger_changes: int = 0
    unchanged: int = 0
    unmatched: int = 0
    ignored: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in asdict(self).items())


def find_subscriber(store: SubscriberStore, event: InboundEvent) -> Subscriber | None:
    """The subscriber an event is about: by the echoed id (checked against the address), else by address."""
    if event.subscriber_id is not None:
        by_id = store.get_by_id(event.subscriber_id)
        if by_id is not None and (
            not event.email or email_key(by_id.email) == email_key(event.email)
        ):
            return by_id
    return store.get(event.email) if event.email and "@" in event.email else None


def _change_status(store: SubscriberStore, subscriber: Subscriber, event: InboundEvent) -> bool:
    status = event.status
    if status is None:
        return False
    if _STRENGTH[status] <= _STRENGTH[subscriber.status] and subscriber.status.is_suppressed:
        return False
    return store.set_status(
        subscriber.id,
        status,
        reason=event.reason[:MAX_REASON],
        source="webhook",
        external_id=event.external_id,
    )


def _ledger_subscriber(store: SubscriberStore, event: InboundEvent) -> int | None:
    """Whose ledger row a delivery event is about; the echoed id needs no lookup (SQL checks the address)."""
    if event.subscriber_id is not None:
        return event.subscriber_id
    found = find_subscriber(store, event)
    return found.id if found is not None else None


def _apply_status(store: SubscriberStore, event: InboundEvent) -> bool | None:
    """Change the subscriber's status for this event; None when nobody matches."""
    subscriber = find_subscriber(store, event)
    if subscriber is None:
        return None
    try:
        return _change_status(store, subscriber, event)
    except SubscriberError as err:
        log.warning("event %s not applied: %s", event.external_id, err)
        return False


def _delivery_event(event: InboundEvent, subscriber_id: int) -> DeliveryEvent | None:
    news = event.ledger
    if news is None:
        return None
    return DeliveryEvent(
        subscriber_id=subscriber_id,
        delivered=news.delivered,
        at=news.at,
        email=event.email,
        issue=news.issue,
        provider_message_id=news.provider_message_id,
        error=news.error,
    )


def apply_events(database: Database, events: Iterable[InboundEvent | None]) -> Outcome:
    """Apply each event once; unknown people and event kinds (None) are counted, not errors.

    Status changes are few (one transaction each, through the store); ledger updates are most of
    the traffic (one ``delivered`` per recipient) and share one transaction.
    """
    store = database.subscribers
    outcome = Outcome()
    changed: list[bool] = []
    ledger_work: list[tuple[int, DeliveryEvent]] = []
    for event in events:
        outcome.received += 1
        if event is None:
            outcome.ignored += 1
            continue
        status_changed = _apply_status(store, event) if event.status is not None else False
        subscriber_id = _ledger_subscriber(store, event)
        if status_changed is None or subscriber_id is None:
            outcome.unmatched += 1
            continue
        outcome.status_changes += status_changed
        reported = _delivery_event(event, subscriber_id)
        if reported is not None:
            ledger_work.append((len(changed), reported))
        changed.append(status_changed)
    applied = database.apply_delivery_events([e for _, e in ledger_work], datetime.now(UTC))
    for (index, _), did in zip(ledger_work, applied, strict=True):
        if did:
            outcome.ledger_changes += 1
            changed[index] = True
    outcome.unchanged = changed.count(False)
    return outcome
