"""The ledger's values: a send's row, a batch's claimed rows and candidates, a transport's outcome.

Plain frozen values and the protocol a transport's answer meets; no statement runs here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import NamedTuple, Protocol

import sqlalchemy as sa

from newsletter.errors import AlreadySentError, SendError
from newsletter.models import Recipient
from newsletter.store import lease
from newsletter.store.lease import Holder
from newsletter.values.clock import aware, now_utc


class SendStatus(enum.StrEnum):
    """Where a send run of an issue stands (``sends.status``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, kw_only=True)
class SendRecord:
    """One ``sends`` row: the send of one issue."""

    id: int
    issue: str
    subject: str
    transport: str
    status: SendStatus
    started_at: datetime
    finished_at: datetime | None
    triggered_by: str
    holder: Holder | None = None  # the run holding its lease now, if any


@dataclass(frozen=True)
class ClaimedRow:
    """A recipient claimed into the batch in flight (plain values only)."""

    subscriber_id: int
    email: str
    name: str | None
    message_id: str


class Candidate(NamedTuple):
    """An active subscriber who has not had the issue yet (not claimed: nothing written)."""

    subscriber_id: int
    email: str
    name: str | None
    # The reader's topic choice as one string, topic_mode + topics JSON ('only["Attachment"]'),
    # None for a reader without topics (most): what newsletter/variants.py keys a variant on.
    choice: str | None = None


# A row as a Candidate without a Python-level __new__ per row (it has exactly their fields).
_new_candidate = partial(tuple.__new__, Candidate)


class DeliveryResult(Protocol):
    """What the ledger reads of a transport's answer for one recipient (``delivery.base``'s).

    A protocol, so the store does not import the delivery layer that sits above it.
    """

    @property
    def recipient(self) -> Recipient: ...
    @property
    def accepted(self) -> bool: ...
    @property
    def provider_message_id(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class Outcome:
    """What the transport said about a claimed batch of ``claimed`` recipients."""

    batch: int
    claimed: int
    results: Sequence[DeliveryResult]
    # All ``claimed`` accepted under this one provider id; ``results`` may then be left empty.
    all_accepted: bool = False
    provider_message_id: str | None = None

    def settled(self) -> Outcome:
        """This outcome without its per-recipient results when they only say "all accepted under
        one id": what the ledger writes of it, without keeping the batch's recipients alive until
        it is written (several delivered batches may wait for the next claim)."""
        if self.all_accepted or not _uniform(self.results, self.claimed):
            return self
        provider = self.results[0].provider_message_id
        return Outcome(self.batch, self.claimed, (), True, provider)


def _record(row: sa.Row[tuple[object, ...]]) -> SendRecord:
    m = row._mapping
    return SendRecord(
        id=int(m["id"]),
        issue=str(m["issue"]),
        subject=str(m["subject"]),
        transport=str(m["transport"]),
        status=SendStatus(m["status"]),
        started_at=aware(m["started_at"]) or now_utc(),
        finished_at=aware(m["finished_at"]),
        triggered_by=str(m["triggered_by"]),
        holder=_holder(m),
    )


def _holder(m: sa.RowMapping) -> Holder | None:
    if m["lease_run"] is None:
        return None
    return Holder(
        run_id=str(m["lease_run"]),
        host=str(m["lease_host"]),
        pid=int(m["lease_pid"]),
        since=aware(m["lease_since"]) or now_utc(),
        heartbeat=aware(m["lease_heartbeat"]) or now_utc(),
    )


def refusal(record: SendRecord) -> SendError:
    """The error for starting a send of an issue that has one already."""
    if record.status is SendStatus.COMPLETED:
        when = (record.finished_at or record.started_at).strftime("%Y-%m-%d %H:%M UTC")
        return AlreadySentError(f"issue {record.issue} was already sent on {when}; nothing to do")
    holder = record.holder
    if holder is not None and not holder.is_stale(now_utc()):
        return lease.busy(record.issue, holder)
    started = record.started_at.strftime("%Y-%m-%d %H:%M UTC")
    why = "its process stopped" if record.status is SendStatus.RUNNING else str(record.status)
    return SendError(
        f"the send of {record.issue} started on {started} did not finish ({why}); "
        f"run `newsletter send {record.issue} --resume` to continue it"
    )


def _uniform(results: Sequence[DeliveryResult], claimed: int) -> bool:
    """Every claimed recipient accepted under one provider id (SendGrid: one per request)."""
    uniform = getattr(results, "uniform", None)  # delivery.base.BatchResults: one value
    if uniform is not None:
        return bool(uniform) and len(results) == claimed
    if len(results) != claimed or not all(r.accepted for r in results):
        return False
    first = results[0].provider_message_id
    if any(r.provider_message_id != first for r in results):
        return False
    return len({r.recipient.subscriber_id for r in results}) == claimed
