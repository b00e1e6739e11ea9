"""Apply verified SendGrid events: suppress bounced, complaining and unsubscribing readers; update the ledger.

Every status change goes through ``SubscriberStore.set_status`` with the event's ``sg_event_id``
as ``external_id``, so a replayed event changes nothing twice; ledger updates are conditional
(only from another state), so they are idempotent too. A webhook never weakens a suppression:
a complaint is not turned back into a mere unsubscription.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from newsletter.delivery.sendgrid import CUSTOM_ARG_ISSUE, CUSTOM_ARG_SUBSCRIBER
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


def _text(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    return (
        str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    )


def _is_id(text: str) -> bool:
    """Only ASCII digits, and not absurdly many (``str.isdigit`` also accepts "²")."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def target_status(event: Mapping[str, Any]) -> tuple[SubscriberStatus, str] | None:
    """The status an event asks for, with the reason to record; None for events that set none."""
    kind = _text(event, "event")
    detail = _text(event, "reason") or _text(event, "type")
    if kind == "bounce":
        if (
            _text(event, "type") == "blocked"
        ):  # a temporary block by the receiver, not a bad address
            return None
        return SubscriberStatus.BOUNCED, f"SendGrid: bounced ({detail or 'no reason given'})"
    if kind == "dropped":
        if "unsubscribe" in detail.lower():
            return SubscriberStatus.UNSUBSCRIBED, f"SendGrid: dropped ({detail})"
        if "spam" in detail.lower():
            return SubscriberStatus.COMPLAINED, f"SendGrid: dropped ({detail})"
        return SubscriberStatus.BOUNCED, f"SendGrid: dropped ({detail or 'no reason given'})"
    if kind == "spamreport":
        return SubscriberStatus.COMPLAINED, "SendGrid: marked as spam by the reader"
    if kind in ("unsubscribe", "group_unsubscribe"):
        return SubscriberStatus.UNSUBSCRIBED, f"SendGrid: {kind.replace('_', ' ')} by the reader"
    return None


def find_subscriber(store: SubscriberStore, event: Mapping[str, Any]) -> Subscriber | None:
    """The subscriber an event is about: by our custom arg (checked against the address), else by address."""
    email = _text(event, "email")
    raw_id = _text(event, CUSTOM_ARG_SUBSCRIBER)
    if _is_id(raw_id):
        by_id = store.get_by_id(int(raw_id))
        if by_id is not None and (not email or email_key(by_id.email) == email_key(email)):
            return by_id
    return store.get(email) if email and "@" in email else None


LEDGER_EVENTS = ("delivered", "bounce", "dropped")


def ledger_event(event: Mapping[str, Any], subscriber_id: int) -> DeliveryEvent | None:
    """``delivered`` stamps delivered_at once; ``bounce``/``dropped`` mark the row failed once."""
    kind = _text(event, "event")
    if kind not in LEDGER_EVENTS:
        return None
    error = (
        ""
        if kind == "delivered"
        else f"{kind}: {_text(event, 'reason') or _text(event, 'type') or 'no reason given'}"
    )
    return DeliveryEvent(
        subscriber_id=subscriber_id,
        delivered=kind == "delivered",
        at=_event_time(event) or datetime.now(UTC),
        email=_text(event, "email"),
        issue=_text(event, CUSTOM_ARG_ISSUE),
        provider_message_id=_text(event, "sg_message_id").split(".")[0],
        error=error,
    )


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 2**33:
        return datetime.fromtimestamp(stamp, UTC)
    return None


def _change_status(
    store: SubscriberStore, subscriber: Subscriber, event: Mapping[str, Any]
) -> bool:
    wanted = target_status(event)
    if wanted is None:
        return False
    status, reason = wanted
    if _STRENGTH[status] <= _STRENGTH[subscriber.status] and subscriber.status.is_suppressed:
        return False
    event_id = _text(event, "sg_event_id")
    return store.set_status(
        subscriber.id,
        status,
        reason=reason[:MAX_REASON],
        source="webhook",
        external_id=f"sendgrid:{event_id}"[:200] if event_id else None,
    )


def _ledger_subscriber(store: SubscriberStore, event: Mapping[str, Any]) -> int | None:
    """Whose ledger row a delivery event is about; the custom arg needs no lookup (SQL checks the address)."""
    raw_id = _text(event, CUSTOM_ARG_SUBSCRIBER)
    if _is_id(raw_id):
        return int(raw_id)
    found = find_subscriber(store, event)
    return found.id if found is not None else None


def _apply_status(store: SubscriberStore, event: Mapping[str, Any]) -> bool | None:
    """Change the subscriber's status for this event; None when nobody matches."""
    subscriber = find_subscriber(store, event)
    if subscriber is None:
        return None
    try:
        return _change_status(store, subscriber, event)
    except SubscriberError as err:
        log.warning("event %s not applied: %s", _text(event, "sg_event_id"), err)
        return False


def apply_events(database: Database, events: Iterable[Mapping[str, Any]]) -> Outcome:
    """Apply each event once; unknown people and event kinds are counted, not errors.

    Status changes are few (one transaction each, through the store); ledger updates are most of
    the traffic (one ``delivered`` per recipient) and share one transaction.
    """
    store = database.subscribers
    outcome = Outcome()
    changed: list[bool] = []
    ledger_work: list[tuple[int, DeliveryEvent]] = []
    for event in events:
        outcome.received += 1
        wants_status = target_status(event) is not None
        if not wants_status and _text(event, "event") not in LEDGER_EVENTS:
            outcome.ignored += 1
            continue
        status_changed = _apply_status(store, event) if wants_status else False
        subscriber_id = _ledger_subscriber(store, event)
        if status_changed is None or subscriber_id is None:
            outcome.unmatched += 1
            continue
        outcome.status_changes += status_changed
        reported = ledger_event(event, subscriber_id)
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
