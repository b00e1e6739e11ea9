"""Apply verified provider events: suppress bounced, complaining and unsubscribing readers; update the ledger.

Events arrive in the program's words (``InboundEvent``, made by the provider's ``Webhook`` hook).
Every status change goes through ``SubscriberStore.set_statuses`` (one transaction a post) with
the provider's event id as ``external_id``, so a replayed event changes nothing twice; ledger updates are conditional
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
from newsletter.models import Subscriber
from newsletter.store.delivery_events import DeliveryEvent
from newsletter.store.subscribers import StatusChange, SubscriberStore, email_key

if TYPE_CHECKING:
    from newsletter.store.database import Database

log = logging.getLogger("newsletter.web.events")

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
    return _People(store, [event]).find(event)


class _People:
    """The people a post's events are about, read with one query per 500 ids and per 500 addresses."""

    def __init__(self, store: SubscriberStore, events: list[InboundEvent]) -> None:
        self.by_id = store.by_ids({e.subscriber_id for e in events if e.subscriber_id is not None})
        addresses = {e.email for e in events if self._wants_address(e)}
        self.by_key = store.by_addresses(addresses) if addresses else {}

    def _by_echoed_id(self, event: InboundEvent) -> Subscriber | None:
        if event.subscriber_id is None:
            return None
        found = self.by_id.get(event.subscriber_id)
        if found is not None and (
            not event.email or email_key(found.email) == email_key(event.email)
        ):
            return found
        return None

    def _wants_address(self, event: InboundEvent) -> bool:
        return bool(event.email and "@" in event.email) and self._by_echoed_id(event) is None

    def find(self, event: InboundEvent) -> Subscriber | None:
        found = self._by_echoed_id(event)
        if found is not None:
            return found
        if event.email and "@" in event.email:
            return self.by_key.get(email_key(event.email))
        return None


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


def _status_changes(store: SubscriberStore, changes: list[StatusChange]) -> list[bool]:
    try:
        return store.set_statuses(changes)
    except SubscriberError as err:  # a person gone between our read and our write
        log.warning("%d status changes not applied: %s", len(changes), err)
        return [False] * len(changes)


def apply_events(database: Database, events: Iterable[InboundEvent | None]) -> Outcome:
    """Apply each event once; unknown people and event kinds (None) are counted, not errors.

    Two transactions a post whatever its size: the status changes (each still its own recorded
    ``subscriber_events`` row, applied in order, never weakening a suppression) and the ledger
    updates (most of the traffic: one ``delivered`` per recipient).
    """
    store = database.subscribers
    outcome = Outcome()
    given = list(events)
    outcome.received = len(given)
    real = [event for event in given if event is not None]
    outcome.ignored = len(given) - len(real)
    people = _People(store, real)
    changes: list[StatusChange] = []
    matched: list[tuple[InboundEvent, int, int | None]] = []  # event, ledger id, change index
    for event in real:
        change_index: int | None = None
        if event.status is not None:
            subscriber = people.find(event)
            if subscriber is None:
                outcome.unmatched += 1
                continue
            change_index = len(changes)
            changes.append(
                StatusChange(
                    subscriber.id,
                    event.status,
                    reason=event.reason[:MAX_REASON],
                    source="webhook",
                    external_id=event.external_id,
                    only_stronger=True,
                )
            )
        if event.subscriber_id is not None:
            subscriber_id: int | None = event.subscriber_id  # SQL checks the address
        else:
            found = people.find(event)
            subscriber_id = found.id if found is not None else None
        if subscriber_id is None:
            outcome.unmatched += 1
            continue
        matched.append((event, subscriber_id, change_index))
    status_changed = _status_changes(store, changes)
    changed: list[bool] = []
    ledger_work: list[tuple[int, DeliveryEvent]] = []
    for event, subscriber_id, change_index in matched:
        did = change_index is not None and status_changed[change_index]
        outcome.status_changes += did
        reported = _delivery_event(event, subscriber_id)
        if reported is not None:
            ledger_work.append((len(changed), reported))
        changed.append(did)
    applied = database.apply_delivery_events([e for _, e in ledger_work], datetime.now(UTC))
    for (index, _), did in zip(ledger_work, applied, strict=True):
        if did:
            outcome.ledger_changes += 1
            changed[index] = True
    outcome.unchanged = changed.count(False)
    return outcome
