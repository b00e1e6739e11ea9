"""What ``newsletter report`` shows of one issue's send: the ledger's counts, times and problems.

Reads only; apart from ``newsletter.send`` so that the report imports none of the sending side
(rendering, transports, the batch loop).
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.errors import SendError
from newsletter.models import LedgerStatus
from newsletter.store.database import Database
from newsletter.store.ledger import SendRecord, SendStatus
from newsletter.variants import ordered_counts


@dataclass(frozen=True, kw_only=True)
class SendReport:
    """The ledger's view of one issue's send (``newsletter report``)."""

    record: SendRecord
    counts: dict[LedgerStatus, int]
    remaining: int  # active subscribers not reached yet
    problems: tuple[tuple[str, LedgerStatus, str | None], ...]  # unconfirmed and failed rows
    resent: int = 0  # sent again after being unconfirmed: they may have two copies
    resent_addresses: tuple[str, ...] = ()  # those readers, when asked for
    variants: tuple[tuple[str, int], ...] = ()  # (variant key, readers sent it), most first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def send_report(database: Database, month: str, *, list_resent: bool = False) -> SendReport:
    """Counts by status, times, transport and problem addresses of ``month``'s send.

    ``list_resent`` also lists who was sent the issue again after being unconfirmed.
    """
    ledger = database.ledger()
    record = ledger.find(month)
    if record is None:
        raise SendError(f"issue {month} has not been sent (no send in the ledger)")
    problems = ledger.addresses(record.id, (LedgerStatus.UNCONFIRMED, LedgerStatus.FAILED))
    return SendReport(
        record=record,
        counts=ledger.counts(record.id),
        remaining=ledger.remaining(record.id) if record.status is not SendStatus.COMPLETED else 0,
        problems=tuple(problems),
        resent=ledger.resent(record.id),
        resent_addresses=tuple(ledger.resent_addresses(record.id)) if list_resent else (),
        variants=tuple(ordered_counts(ledger.variant_counts(record.id))),
    )
