"""The send lease: one run at a time owns an issue's send, and proves it in every write.

A run takes the lease (``sends.lease_*``) with one compare-and-set ``UPDATE``: it succeeds only
if the holder it read is still the holder, so of two runs starting together exactly one wins.
The holder refreshes its heartbeat every few seconds. A lease is *stale* when its heartbeat is
older than the timeout, or at once when its holder ran on this host and that process is gone.

The lease is a fencing token: every write of a run (claim, record, release, finish) first runs
``fence()`` in the same transaction, an ``UPDATE`` that matches only while the run still holds
the lease. A run that stalled (a loaded machine, a paused VM), lost its lease to ``--resume``
and woke up again can therefore neither claim nor record anything: its transaction fails with
``LeaseLostError`` and nothing of it is written. On PostgreSQL the fencing ``UPDATE`` locks the
send's row until commit; on SQLite it takes the database's write lock. Either way the check and
the write it guards cannot be separated by another run's takeover.

Staleness is judged with the clock of the process that wants to take over: hosts that share a
database should keep their clocks in sync (NTP), as the lease timeout is far longer than any
usual drift.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter.errors import LeaseLostError, SendBusyError
from newsletter.store.schema import sends
from newsletter.values.clock import aware, now_utc

LEASE_TIMEOUT = timedelta(seconds=60)  # no heartbeat for this long: the holder is gone
HEARTBEAT_SECONDS = 5.0  # how often a holder proves it is alive


@dataclass(frozen=True)
class Owner:
    """Who a run is: a random id for this run, and where it runs."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Owner:
        return cls(run_id=secrets.token_hex(8), host=socket.gethostname(), pid=os.getpid())


@dataclass(frozen=True, kw_only=True)
class Holder:
    """The run holding a send's lease, as read from the database."""

    run_id: str
    host: str
    pid: int
    since: datetime
    heartbeat: datetime

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since:%Y-%m-%d %H:%M:%S} UTC"

    def is_stale(self, now: datetime, timeout: timedelta = LEASE_TIMEOUT) -> bool:
        """Silent for longer than ``timeout``, or a process of this host that no longer runs."""
        if self.heartbeat < now - timeout:
            return True
        return self.host == socket.gethostname() and not process_alive(self.pid)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process here (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def holder_of(conn: sa.Connection, send_id: int) -> Holder | None:
    """The current holder of the send's lease, or None."""
    row = conn.execute(
        sa.select(
            sends.c.lease_run,
            sends.c.lease_host,
            sends.c.lease_pid,
            sends.c.lease_since,
            sends.c.lease_heartbeat,
        ).where(sends.c.id == send_id)
    ).first()
    if row is None or row.lease_run is None:
        return None
    return Holder(
        run_id=str(row.lease_run),
        host=str(row.lease_host),
        pid=int(row.lease_pid),
        since=aware(row.lease_since),
        heartbeat=aware(row.lease_heartbeat),
    )


def lease_values(owner: Owner, at: datetime) -> dict[str, object]:
    """The ``sends`` columns that make ``owner`` the holder from ``at``."""
    return {
        "lease_run": owner.run_id,
        "lease_host": owner.host[:200],
        "lease_pid": owner.pid,
        "lease_since": at,
        "lease_heartbeat": at,
    }


def take(
    conn: sa.Connection,
    send_id: int,
    owner: Owner,
    observed: Holder | None,
    changes: dict[str, object],
) -> bool:
    """Become the holder if ``observed`` still holds it (compare-and-set); apply ``changes`` too.

    A holder that beat its heartbeat since it was observed keeps the lease.
    """
    still: sa.ColumnElement[bool]
    if observed is None:
        still = sends.c.lease_run.is_(None)
    else:
        still = sa.and_(
            sends.c.lease_run == observed.run_id, sends.c.lease_heartbeat <= observed.heartbeat
        )
    values = lease_values(owner, now_utc()) | changes
    result = conn.execute(sends.update().where(sends.c.id == send_id, still).values(**values))
    return bool(result.rowcount)


def fence(conn: sa.Connection, send_id: int, issue: str, run_id: str) -> None:
    """Prove in this transaction that ``run_id`` still holds the lease (and beat its heartbeat)."""
    result = conn.execute(_FENCE, {"f_send_id": send_id, "f_run": run_id, "f_now": now_utc()})
    if not result.rowcount:
        current = holder_of(conn, send_id)
        by = f"; it is now held by {current.describe()}" if current else ""
        raise LeaseLostError(
            f"this run lost its lease on the send of {issue} (it was silent for over "
            f"{int(LEASE_TIMEOUT.total_seconds())} s and another run took over{by}); "
            "it stopped without claiming or recording anything more"
        )


# Built once (a claim and a record each run it): SQLAlchemy caches its compiled form.
_FENCE = (
    sends.update()
    .where(sends.c.id == sa.bindparam("f_send_id"), sends.c.lease_run == sa.bindparam("f_run"))
    .values(lease_heartbeat=sa.bindparam("f_now", type_=sa.DateTime(timezone=True)))
)


def release(conn: sa.Connection, send_id: int, run_id: str) -> None:
    """Give the lease up (only if still held by ``run_id``)."""
    empty = dict.fromkeys(
        ("lease_run", "lease_host", "lease_pid", "lease_since", "lease_heartbeat")
    )
    conn.execute(
        sends.update().where(sends.c.id == send_id, sends.c.lease_run == run_id).values(**empty)
    )


def busy(issue: str, holder: Holder) -> SendBusyError:
    """The refusal when a live run holds the send."""
    return SendBusyError(f"{issue} is being sent by {holder.describe()}; nothing done")
