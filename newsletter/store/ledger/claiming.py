"""Claiming a batch in one ``INSERT … SELECT``; a dead run's ``pending`` rows made ``unconfirmed``.

SQLite gets the batch's ids as one JSON array (``json_each``) and counts what it inserted;
PostgreSQL reads the ids claimed back with RETURNING.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from newsletter.models import LedgerStatus
from newsletter.store.ledger.message_ids import MessageIds
from newsletter.store.ledger.reads import _ACTIVE, _not_in_send
from newsletter.store.schema import deliveries, subscribers
from newsletter.values.clock import now_utc


def _claim_ids(ids_given: sa.ColumnElement[bool], *, returning: bool = True) -> sa.Insert:
    """The claim of the subscribers ``ids_given`` picks (see ``claim_rows``)."""
    claim = deliveries.insert().from_select(
        [
            "send_id",
            "subscriber_id",
            "email",
            "status",
            "batch",
            "message_id",
            "updated_at",
            "variant",
        ],
        sa.select(
            sa.bindparam("c_send_id", type_=sa.Integer),
            subscribers.c.id,
            subscribers.c.email,
            sa.bindparam("c_status", type_=sa.String),
            sa.bindparam("c_batch", type_=sa.Integer),
            sa.bindparam("c_prefix", type_=sa.String)
            + sa.cast(
                (
                    sa.cast(subscribers.c.id, sa.BigInteger)
                    * sa.bindparam("c_multiplier", type_=sa.BigInteger)
                    + sa.bindparam("c_offset", type_=sa.BigInteger)
                )
                % MessageIds.MODULUS,
                sa.String,
            )
            + sa.bindparam("c_suffix", type_=sa.String),
            sa.bindparam("c_now", type_=sa.DateTime(timezone=True)),
            sa.bindparam("c_variant", type_=sa.String),
        ).where(
            ids_given,
            *_ACTIVE,
            _not_in_send(sa.bindparam("c_send_id")),
        ),
    )
    return claim.returning(deliveries.c.subscriber_id) if returning else claim


_CLAIM_IDS = _claim_ids(subscribers.c.id.in_(sa.bindparam("c_ids", expanding=True)))
# SQLite: the batch's ids as one JSON array parameter instead of 1,000 placeholders, which
# SQLAlchemy would otherwise write into the statement's text and bind one by one on every claim.
_IDS_JSON = sa.func.json_each(sa.bindparam("c_ids_json", type_=sa.String)).table_valued("value")
_CLAIM_IDS_SQLITE = _claim_ids(subscribers.c.id.in_(sa.select(_IDS_JSON.c.value)), returning=False)
# Those of a claim's ids that have the batch's row now: inserted by the claim just made in the
# same transaction (a batch number is used by one claim; the lease keeps other runs out).
_CLAIMED_OF_BATCH = sa.select(deliveries.c.subscriber_id).where(
    deliveries.c.send_id == sa.bindparam("c_send_id"),
    deliveries.c.batch == sa.bindparam("c_batch"),
    deliveries.c.status == sa.bindparam("c_status"),
    deliveries.c.subscriber_id.in_(sa.select(_IDS_JSON.c.value)),
)


def mark_in_flight(conn: sa.Connection, send_id: int) -> int:
    """Turn the send's ``pending`` rows ``unconfirmed`` (their run died); how many there were."""
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.send_id == send_id, deliveries.c.status == LedgerStatus.PENDING.value)
        .values(
            status=LedgerStatus.UNCONFIRMED.value,
            error="in flight when the sending process stopped",
            updated_at=now_utc(),
        )
    )
    return int(result.rowcount or 0)


def claim_rows(
    conn: sa.Connection,
    send_id: int,
    ids: Sequence[int],
    message_ids: MessageIds,
    *,
    batch: int,
    status: LedgerStatus = LedgerStatus.PENDING,
    variant: str | None = None,
) -> set[int]:
    """Insert the rows of those of ``ids`` still active and without one; the ids claimed.

    RETURNING gives exactly the rows this statement inserted (psycopg reports no rowcount for
    ``INSERT … SELECT``, and other rows of the batch are not ours).
    """
    values: dict[str, object] = {"c_send_id": send_id, "c_batch": batch, "c_now": now_utc()}
    values |= {"c_prefix": message_ids.prefix, "c_suffix": message_ids.suffix}
    values |= {"c_multiplier": message_ids.multiplier, "c_offset": message_ids.offset}
    values |= {"c_status": status.value, "c_variant": variant}
    if conn.dialect.name == "sqlite":
        values["c_ids_json"] = "[" + ",".join(map(str, map(int, ids))) + "]"
        # No RETURNING: reading 1,000 returned rows is 1,000 steps, each letting go of the GIL.
        # SQLite counts what the statement inserted; only a short count asks which ones.
        inserted = conn.execute(_CLAIM_IDS_SQLITE, values).rowcount
        if inserted == len(ids):
            return set(ids)
        return set(conn.scalars(_CLAIMED_OF_BATCH, values))
    values["c_ids"] = list(ids)
    return set(conn.scalars(_CLAIM_IDS, values))
