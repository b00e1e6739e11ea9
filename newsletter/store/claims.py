"""The scheduler's claim on each month (``schedule_claims``): what lets two schedulers send once.

One row per month is the month's state (see ``newsletter.monthly``). ``sending`` is taken with one
INSERT (from no row) or one conditional UPDATE (from ``waiting``): whichever process loses that
race sees it taken.
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from newsletter.store.schema import schedule_claims
from newsletter.values.clock import aware


class Claim(enum.StrEnum):
    """The state stored in ``schedule_claims.outcome``."""

    WAITING = "waiting"
    SENDING = "sending"
    SENT = "sent"
    GAVE_UP = "gave_up"
    FAILED = "failed"


@dataclass(frozen=True)
class ClaimRow:
    issue: str
    claimed_at: datetime  # the month's first send time (start of the wait_for_ready window)
    owner: str
    outcome: str | None


def owner_name() -> str:
    """Who holds a claim: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ScheduleClaims:
    """The ``schedule_claims`` table of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def read(self, month: str) -> ClaimRow | None:
        """The month's row, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schedule_claims).where(schedule_claims.c.issue == month)
            ).first()
        if row is None:
            return None
        return ClaimRow(row.issue, aware(row.claimed_at), row.owner, row.outcome)

    def insert(self, month: str, at: datetime, outcome: Claim) -> bool:
        """Create the month's row; False if it exists (another process, or an earlier run)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schedule_claims.insert().values(
                        issue=month,
                        claimed_at=at.astimezone(UTC),
                        owner=owner_name(),
                        outcome=outcome.value,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def take(self, month: str, window_start: datetime) -> bool:
        """Claim the month for sending: atomic, so of two processes exactly one gets True."""
        if self.insert(month, window_start, Claim.SENDING):
            return True
        with self.engine.begin() as conn:
            taken = conn.execute(
                schedule_claims.update()
                .where(
                    schedule_claims.c.issue == month,
                    schedule_claims.c.outcome == Claim.WAITING.value,
                )
                .values(outcome=Claim.SENDING.value, owner=owner_name())
            )
        return taken.rowcount == 1

    def set(self, month: str, outcome: Claim) -> None:
        """Move the month's row to ``outcome``."""
        with self.engine.begin() as conn:
            conn.execute(
                schedule_claims.update()
                .where(schedule_claims.c.issue == month)
                .values(outcome=outcome.value)
            )

    def finish(
        self, month: str, at: datetime, outcome: Claim, *, only_waiting: bool = False
    ) -> None:
        """Record a final state for the month (insert the row if there is none)."""
        if self.insert(month, at, outcome):
            return
        query = schedule_claims.update().where(schedule_claims.c.issue == month)
        if only_waiting:
            query = query.where(schedule_claims.c.outcome == Claim.WAITING.value)
        with self.engine.begin() as conn:
            conn.execute(query.values(outcome=outcome.value))
