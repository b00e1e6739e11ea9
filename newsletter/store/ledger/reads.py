"""What the ledger reads without a lease: the send's row, the next candidates, counts, addresses.

Also the filters the claim shares with the candidate query (active, not in the send yet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from newsletter.models import LedgerStatus, SubscriberStatus
from newsletter.store.ledger.records import Candidate, SendRecord, _new_candidate, _record
from newsletter.store.schema import deliveries, sends, subscribers


def _not_in_send(send_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(
        deliveries.c.send_id == send_id, deliveries.c.subscriber_id == subscribers.c.id
    )


_ACTIVE = (
    subscribers.c.status == SubscriberStatus.ACTIVE.value,
    subscribers.c.email.is_not(None),
)


# A reader's topic choice in one column, NULL for no topics: the common case costs nothing.
def _resendable(send_id: int) -> tuple[sa.ColumnElement[bool], ...]:
    """``unconfirmed`` rows of ``send_id`` whose subscriber is still active (join subscribers)."""
    return (
        deliveries.c.send_id == send_id,
        deliveries.c.status == LedgerStatus.UNCONFIRMED.value,
        subscribers.c.status == SubscriberStatus.ACTIVE.value,
    )


_CHOICE = sa.case(
    (subscribers.c.topics == "[]", sa.null()),
    else_=subscribers.c.topic_mode + subscribers.c.topics,
)

# Module-level statements with bound parameters: compiled once, cached by SQLAlchemy.
_CANDIDATES = (
    sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, _CHOICE)
    .where(
        *_ACTIVE,
        subscribers.c.id > sa.bindparam("c_after"),
        _not_in_send(sa.bindparam("c_send_id")),
    )
    .order_by(subscribers.c.id)
    .limit(sa.bindparam("c_limit"))
)
_CANDIDATES_INNER = _CANDIDATES.subquery()
_CANDIDATES_JSON = sa.select(
    sa.func.json_group_array(sa.func.json_array(*_CANDIDATES_INNER.c))
).select_from(_CANDIDATES_INNER)


class LedgerReads:
    """The reading half of ``Ledger``: plain connections, no lease, no write lock."""

    engine: sa.Engine

    def find(self, issue: str) -> SendRecord | None:
        """The send of ``issue``, if it has one."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sends).where(sends.c.issue == issue)).first()
        return _record(row) if row else None

    def next_batch_number(self, send_id: int) -> int:
        """One more than the highest batch number used by the send so far."""
        with self.engine.connect() as conn:
            highest = conn.scalar(
                sa.select(sa.func.max(deliveries.c.batch)).where(deliveries.c.send_id == send_id)
            )
        return int(highest or 0) + 1

    def candidates(self, send_id: int, *, after_id: int, limit: int) -> list[Candidate]:
        """The next ``limit`` active subscribers (ids above ``after_id``) with no row yet; reads only."""
        values = {"c_send_id": send_id, "c_after": after_id, "c_limit": limit}
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # One row holding the batch as JSON: one step of the statement instead of one a
                # reader, and each step lets go of the GIL, which the send's other threads
                # hold most of the time (every step would wait for its turn).
                rows = json.loads(conn.execute(_CANDIDATES_JSON, values).scalar_one() or "[]")
                rows.sort()  # by id (an aggregate's order is not promised)
            else:
                rows = conn.execute(_CANDIDATES, values).all()
        return list(map(_new_candidate, rows))

    def unconfirmed_variants(self, send_id: int) -> list[str | None]:
        """The variants of ``unconfirmed`` rows of still-active subscribers (None: from 0.1)."""
        query = (
            sa.select(deliveries.c.variant)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(*_resendable(send_id))
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(conn.scalars(query), key=lambda v: (v is None, v or ""))

    def counts(self, send_id: int) -> dict[LedgerStatus, int]:
        """Rows per status (every status present, zero when none)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.send_id == send_id)
                .group_by(deliveries.c.status)
            ).all()
        found = {LedgerStatus(status): int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in LedgerStatus}

    def variant_counts(self, send_id: int) -> dict[str, int]:
        """Rows per variant sent or in flight (not skipped or failed); no variant counts as ``""``."""
        query = (
            sa.select(deliveries.c.variant, sa.func.count())
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status.in_(
                    [
                        LedgerStatus.SENT.value,
                        LedgerStatus.PENDING.value,
                        LedgerStatus.UNCONFIRMED.value,
                    ]
                ),
            )
            .group_by(deliveries.c.variant)
        )
        with self.engine.connect() as conn:
            return {str(v or ""): int(n) for v, n in conn.execute(query)}

    def topic_groups(self, send_id: int | None) -> list[tuple[str | None, int]]:
        """``(choice, readers)`` of the active readers not reached yet (see ``Candidate``)."""
        choice = _CHOICE.label("choice")
        query = sa.select(choice, sa.func.count()).where(*_ACTIVE).group_by(choice)
        if send_id is not None:
            query = query.where(_not_in_send(sa.literal(send_id)))
        with self.engine.connect() as conn:
            return [(c, int(n)) for c, n in conn.execute(query)]

    def remaining(self, send_id: int | None) -> int:
        """Active subscribers with no row in the send yet (all active ones without a send)."""
        query = sa.select(sa.func.count()).where(
            subscribers.c.status == SubscriberStatus.ACTIVE.value,
            subscribers.c.email.is_not(None),
        )
        if send_id is not None:
            query = query.where(
                ~sa.exists().where(
                    deliveries.c.send_id == send_id,
                    deliveries.c.subscriber_id == subscribers.c.id,
                )
            )
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def resendable(self, send_id: int) -> int:
        """``unconfirmed`` rows whose subscriber is still active."""
        query = (
            sa.select(sa.func.count())
            .select_from(
                deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            )
            .where(*_resendable(send_id))
        )
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def resent(self, send_id: int) -> int:
        """Rows sent again after being unconfirmed: readers who may hold two copies."""
        query = sa.select(sa.func.count()).where(
            deliveries.c.send_id == send_id, deliveries.c.resent > 0
        )
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def resent_addresses(self, send_id: int) -> Iterator[str]:
        """The addresses of those rows, streamed in id order."""
        query = (
            sa.select(deliveries.c.email)
            .where(deliveries.c.send_id == send_id, deliveries.c.resent > 0)
            .order_by(deliveries.c.id)
            .execution_options(yield_per=1000)
        )
        with self.engine.connect() as conn:
            yield from (str(email) for email in conn.scalars(query))

    def addresses(
        self, send_id: int, statuses: Sequence[LedgerStatus]
    ) -> Iterator[tuple[str, LedgerStatus, str | None]]:
        """``(email, status, error)`` of the rows in ``statuses``, streamed in id order."""
        query = (
            sa.select(deliveries.c.email, deliveries.c.status, deliveries.c.error)
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status.in_([s.value for s in statuses]),
            )
            .order_by(deliveries.c.id)
            .execution_options(yield_per=1000)
        )
        with self.engine.connect() as conn:
            for email, status, error in conn.execute(query):
                yield str(email), LedgerStatus(status), error
