"""Recording a batch's outcome (``sent`` / ``failed`` / ``unconfirmed``) and giving a batch back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from newsletter.models import LedgerStatus
from newsletter.store.ledger.records import DeliveryResult, Outcome
from newsletter.store.schema import deliveries
from newsletter.values.clock import now_utc

ERROR_MAX = 1000  # deliveries.error length


# The error of a row the transport said nothing about (it may or may not have gone out).
NO_RESULT = "the transport gave no result for this recipient"


def _release(conn: sa.Connection, send_id: int, batch: int, ids: Sequence[int] | None) -> int:
    """Delete the batch's fresh ``pending`` rows (of ``ids``, None: all) so ``--resume`` sends
    them; a row resent after being unconfirmed goes back to ``unconfirmed``."""
    in_batch = [
        deliveries.c.send_id == send_id,
        deliveries.c.status == LedgerStatus.PENDING.value,
        deliveries.c.batch == batch,
    ]
    if ids is not None:
        in_batch.append(deliveries.c.subscriber_id.in_(list(ids)))
    fresh = conn.execute(
        deliveries.delete().where(*in_batch, deliveries.c.error.is_(None))  # not a resent row
    )
    resent = conn.execute(
        deliveries.update()
        .where(*in_batch)
        .values(status=LedgerStatus.UNCONFIRMED.value, updated_at=now_utc())
    )
    return int(fresh.rowcount or 0) + int(resent.rowcount or 0)


def _record_outcome(conn: sa.Connection, send_id: int, done: Outcome) -> None:
    now = now_utc()
    in_batch = (
        deliveries.c.send_id == send_id,
        deliveries.c.status == LedgerStatus.PENDING.value,
        deliveries.c.batch == done.batch,
    )
    done = done.settled()
    if done.all_accepted:
        # One statement for the whole batch: the common case, and the fast one.
        conn.execute(
            _RECORD_BATCH,
            {
                "r_send_id": send_id,
                "r_batch": done.batch,
                "r_provider_id": done.provider_message_id,
                "r_now": now,
            },
        )
        return
    if done.results:
        conn.execute(_RECORD_ONE, [_result_params(send_id, r, now) for r in done.results])
    # Anything the transport said nothing about may or may not have gone out.
    conn.execute(
        deliveries.update()
        .where(*in_batch)
        .values(
            status=LedgerStatus.UNCONFIRMED.value,
            error=NO_RESULT,
            updated_at=now,
        )
    )


# A whole batch accepted under one provider id (module level: compiled once, cached).
_RECORD_BATCH = (
    deliveries.update()
    .where(
        deliveries.c.send_id == sa.bindparam("r_send_id"),
        deliveries.c.status == LedgerStatus.PENDING.value,
        deliveries.c.batch == sa.bindparam("r_batch"),
    )
    .values(
        status=LedgerStatus.SENT.value,
        provider_message_id=sa.bindparam("r_provider_id"),
        error=None,
        updated_at=sa.bindparam("r_now", type_=sa.DateTime(timezone=True)),
    )
)

_RECORD_ONE = (
    deliveries.update()
    .where(
        deliveries.c.send_id == sa.bindparam("p_send_id"),
        deliveries.c.subscriber_id == sa.bindparam("p_subscriber_id"),
        deliveries.c.status == LedgerStatus.PENDING.value,
    )
    .values(
        status=sa.bindparam("p_status"),
        provider_message_id=sa.bindparam("p_provider_id"),
        error=sa.bindparam("p_error"),
        updated_at=sa.bindparam("p_now", type_=sa.DateTime(timezone=True)),
    )
)


def _result_params(send_id: int, result: DeliveryResult, now: datetime) -> Mapping[str, object]:
    return {
        "p_send_id": send_id,
        "p_subscriber_id": result.recipient.subscriber_id,
        "p_status": (LedgerStatus.SENT if result.accepted else LedgerStatus.FAILED).value,
        "p_provider_id": result.provider_message_id,
        "p_error": None if result.accepted else (result.error or "refused")[:ERROR_MAX],
        "p_now": now,
    }
