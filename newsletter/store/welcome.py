"""The ledger side of the welcome issue: one reader, one claim, fenced like a send's.

A reader who confirms is sent the latest issue whose send has completed (``newsletter/welcome.py``).
That copy is that issue's delivery to them: a ``deliveries`` row like any batch's. To write it,
the welcome takes the send's lease exactly as a run does (a compare-and-set from "nobody holds
it"), claims the row in the same transaction and keeps the lease while the one message is on the
wire; recording the result is fenced by the lease and gives it up. So:

- while a run of that issue holds the lease, no welcome is claimed (the caller leaves the reader
  to the run, which reaches every active reader without a row);
- a run that starts meanwhile finds the lease held by a live process and refuses, like any
  second run; a welcome that died on the wire leaves its row ``pending`` and a stale lease, which
  ``--resume`` takes over and turns ``unconfirmed``, as for a batch;
- a welcome whose process died holding the lease leaves it stale: the next welcome (or a
  ``--resume``) takes it over and turns the dead one's ``pending`` row ``unconfirmed``, exactly
  as a resume does for a batch, so one crash never blocks the welcomes after it;
- the unique (send, subscriber) row makes a second copy impossible either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from newsletter.models import LedgerStatus
from newsletter.store import lease
from newsletter.store.lease import Owner
from newsletter.store.ledger import DeliveryResult, MessageIds, claim_rows, mark_in_flight
from newsletter.store.ledger.outcomes import NO_RESULT
from newsletter.store.schema import deliveries, sends

ERROR_MAX = 1000
WELCOME_BATCH = (
    0  # deliveries.batch of welcome rows: never a send's batch number (those start at 1)
)


@dataclass(frozen=True)
class LatestSend:
    """The send of the latest issue that has completed (``finished_at`` is set once, at completion)."""

    id: int
    issue: str


def latest_completed(engine: sa.Engine) -> LatestSend | None:
    query = (
        sa.select(sends.c.id, sends.c.issue)
        .where(sends.c.finished_at.is_not(None))
        .order_by(sends.c.issue.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return LatestSend(int(row.id), str(row.issue)) if row else None


def newer_unfinished(engine: sa.Engine, issue: str) -> str | None:
    """A newer issue whose send has started and not completed: its run will reach the reader."""
    query = (
        sa.select(sends.c.issue)
        .where(sends.c.issue > issue, sends.c.finished_at.is_(None))
        .order_by(sends.c.issue)
        .limit(1)
    )
    with engine.connect() as conn:
        found = conn.scalar(query)
    return str(found) if found is not None else None


def claim(
    engine: sa.Engine,
    send: LatestSend,
    subscriber_id: int,
    owner: Owner,
    *,
    message_ids: MessageIds,
    variant: str | None,
    status: LedgerStatus = LedgerStatus.PENDING,
) -> bool:
    """Take the send's lease and claim the reader's row, in one transaction.

    False (nothing written) while a run holds the lease, or when the reader already has a row
    or is not active. A ``pending`` claim keeps the lease for ``record``; a ``skipped`` one is
    final and gives it back at once.
    """
    with engine.begin() as conn:
        holder = lease.holder_of(conn, send.id)
        if holder is not None and not holder.is_stale(datetime.now(UTC)):
            return False  # a live run (or welcome) holds it
        if not lease.take(conn, send.id, owner, holder, {}):
            return False
        if holder is not None:  # taken over from a dead holder: its copies in flight may be out
            mark_in_flight(conn, send.id)
        claimed = claim_rows(
            conn,
            send.id,
            [subscriber_id],
            message_ids,
            batch=WELCOME_BATCH,
            status=status,
            variant=variant,
        )
        if not claimed or status is not LedgerStatus.PENDING:
            lease.release(conn, send.id, owner.run_id)
        return bool(claimed)


def record(
    engine: sa.Engine,
    send: LatestSend,
    subscriber_id: int,
    owner: Owner,
    results: Sequence[DeliveryResult] | None,
) -> None:
    """What the transport said (None: it refused the message whole, so the claim is undone).

    Fenced by the lease (``LeaseLostError`` if a ``--resume`` took it over meanwhile: then the
    row is theirs, ``unconfirmed``), which is given up in the same transaction.
    """
    mine = (
        deliveries.c.send_id == send.id,
        deliveries.c.subscriber_id == subscriber_id,
        deliveries.c.status == LedgerStatus.PENDING.value,
    )
    with engine.begin() as conn:
        lease.fence(conn, send.id, send.issue, owner.run_id)
        if results is None:
            conn.execute(deliveries.delete().where(*mine))
        elif not results:
            conn.execute(
                deliveries.update()
                .where(*mine)
                .values(
                    status=LedgerStatus.UNCONFIRMED.value,
                    error=NO_RESULT,
                    updated_at=datetime.now(UTC),
                )
            )
        else:
            result = results[0]
            conn.execute(
                deliveries.update()
                .where(*mine)
                .values(
                    status=(LedgerStatus.SENT if result.accepted else LedgerStatus.FAILED).value,
                    provider_message_id=result.provider_message_id,
                    error=None if result.accepted else (result.error or "refused")[:ERROR_MAX],
                    updated_at=datetime.now(UTC),
                )
            )
        lease.release(conn, send.id, owner.run_id)
