"""Pull SendGrid's suppression lists into the subscriber list, so no one SendGrid suppressed is mailed.

Four lists, each paged with ``limit``/``offset`` (at most 500 a page, per SendGrid's API spec):
global unsubscribes → ``unsubscribed``, bounces → ``bounced``, spam reports → ``complained``,
invalid emails → ``bounced``. Each change is a recorded subscriber event (source ``sync``) whose
``external_id`` names the SendGrid record, so a second sync changes nothing, and a person an
editor re-activates by hand stays active until SendGrid records something new about them.

Addresses SendGrid lists that are not on our list are ignored (and counted): we keep no rows for
people who never subscribed; should one subscribe later, the sync before the next send catches them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsletter.config import Settings
from newsletter.delivery.hooks import ListReport, ProgressCallback, SyncReport
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import SendGridAPI
from newsletter.errors import PermanentDeliveryError
from newsletter.models import SubscriberStatus
from newsletter.store.subscribers import StatusChange, SubscriberStore, email_key

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # SendGrid's maximum `limit` for the suppression lists
MAX_PAGES = 10_000  # 5 million records: a server that ignores `offset` cannot loop us forever
MAX_REASON = 500  # subscriber_events.reason is VARCHAR(500)


@dataclass(frozen=True)
class SuppressionList:
    """One of SendGrid's suppression lists and the status its members get here."""

    name: str  # as SendGrid names it in the API path
    title: str  # as people read it
    status: SubscriberStatus

    @property
    def path(self) -> str:
        return f"/v3/suppression/{self.name}"


LISTS = (
    SuppressionList("unsubscribes", "global unsubscribes", SubscriberStatus.UNSUBSCRIBED),
    SuppressionList("bounces", "bounces", SubscriberStatus.BOUNCED),
    SuppressionList("spam_reports", "spam reports", SubscriberStatus.COMPLAINED),
    SuppressionList("invalid_emails", "invalid emails", SubscriberStatus.BOUNCED),
)


def sync_suppressions(
    settings: Settings,
    store: SubscriberStore,
    *,
    api: SendGridAPI | None = None,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Apply SendGrid's four suppression lists to ``store``; idempotent (the ``SuppressionPull`` hook)."""
    api = api or SendGridAPI(settings.delivery.of(SendGridSettings))
    reports = []
    for suppression in LISTS:
        report = ListReport(suppression.name)
        for page in _pages(api, suppression):
            _apply_page(store, suppression, page, report)
            if progress is not None and page:
                progress(suppression.name, report.fetched)
        log.info(
            "SendGrid %s: %d fetched, %d suppressed now, %d already, %d not on the list",
            suppression.title,
            report.fetched,
            len(report.suppressed),
            report.already,
            report.unknown,
        )
        reports.append(report)
    return SyncReport(tuple(reports))


def _pages(api: SendGridAPI, suppression: SuppressionList) -> Iterator[list[dict[str, Any]]]:
    """The records of one list, page by page, until a page comes back short."""
    for page_number in range(MAX_PAGES):
        body, _headers = api.get(
            suppression.path, {"limit": PAGE_SIZE, "offset": page_number * PAGE_SIZE}
        )
        page = _page(body, suppression)
        yield page
        if len(page) < PAGE_SIZE:
            return
    log.warning("SendGrid %s: stopped after %d pages", suppression.title, MAX_PAGES)


def _page(body: Any, suppression: SuppressionList) -> list[dict[str, Any]]:
    if body is None:
        return []
    if not isinstance(body, list):
        raise PermanentDeliveryError(
            f"SendGrid GET {suppression.path}: expected a JSON list of records, "
            f"got {type(body).__name__}"
        )
    records = []
    for item in body:
        if isinstance(item, dict) and isinstance(item.get("email"), str) and item["email"]:
            records.append(item)
        else:
            log.warning("SendGrid %s: skipped a record without an address", suppression.title)
    return records


def _on_our_list(store: SubscriberStore, page: list[dict[str, Any]]) -> dict[str, _Known]:
    """The people of one page who are on our list, by address key: one query a page."""
    found = store.by_keys({email_key(record["email"]) for record in page})
    return {key: _Known(*values) for key, values in found.items()}


@dataclass
class _Known:
    id: int
    email: str
    status: SubscriberStatus


def _apply_page(
    store: SubscriberStore,
    suppression: SuppressionList,
    page: list[dict[str, Any]],
    report: ListReport,
) -> None:
    """One page's changes in ONE transaction: a durable commit a page, not one a record."""
    known = _on_our_list(store, page)
    changes: list[StatusChange] = []
    people: list[_Known] = []
    for record in page:
        report.fetched += 1
        email = record["email"].strip()
        person = known.get(email_key(email))
        if person is None:
            report.unknown += 1
            continue
        if person.status.is_suppressed:
            report.already += 1
            continue
        changes.append(
            StatusChange(
                person.id,
                suppression.status,
                reason=_reason(suppression, record),
                source="sync",
                external_id=_external_id(suppression, email, record),
                only_mailable=True,
            )
        )
        people.append(person)
    for person, changed in zip(people, store.set_statuses(changes), strict=True):
        if changed:
            person.status = suppression.status
            report.suppressed.append(person.email)
            log.info("%s: %s (SendGrid %s)", person.email, suppression.status, suppression.title)
        else:
            report.already += 1


def _reason(suppression: SuppressionList, record: dict[str, Any]) -> str:
    """E.g. ``SendGrid bounces since 2026-11-20 14:03 UTC: 550 5.1.1 user unknown (5.1.1)``."""
    text = f"SendGrid {suppression.title}"
    created = _created(record)
    if created is not None:
        text += f" since {created.strftime('%Y-%m-%d %H:%M')} UTC"
    said = " ".join(str(record.get("reason") or "").split())
    if said:
        text += f": {said}"
    status = str(record.get("status") or "").strip()
    if status and status not in said:
        text += f" ({status})"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _created(record: dict[str, Any]) -> datetime | None:
    value = record.get("created")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _external_id(suppression: SuppressionList, email: str, record: dict[str, Any]) -> str:
    """One SendGrid record: list, time and (hashed) address; applied at most once."""
    digest = hashlib.sha256(email.casefold().encode("utf-8")).hexdigest()[:32]
    return f"sendgrid-sync:{suppression.name}:{record.get('created', '')}:{digest}"
