"""``Ledger``: the ledger as one run sees it, every write fenced by the send's lease.

The send row (start, acquire, heartbeat, finish), claiming batches, resending ``unconfirmed``
rows, recording outcomes; the reads it inherits from ``reads.LedgerReads``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from newsletter.errors import LeaseLostError, SendError
from newsletter.models import LedgerStatus
from newsletter.store import lease
from newsletter.store.failures import DATABASE_ERRORS
from newsletter.store.lease import HEARTBEAT_SECONDS, LEASE_TIMEOUT, Holder, Owner
from newsletter.store.ledger.claiming import claim_rows, mark_in_flight
from newsletter.store.ledger.message_ids import MessageIds
from newsletter.store.ledger.outcomes import _record_outcome, _release
from newsletter.store.ledger.reads import LedgerReads, _resendable
from newsletter.store.ledger.records import ClaimedRow, Outcome, SendRecord, SendStatus, refusal
from newsletter.store.schema import deliveries, sends, subscribers
from newsletter.values.clock import now_utc

RESENDING = "unconfirmed earlier; sent again with --resend-unconfirmed"


class Ledger(LedgerReads):
    """The ``sends`` and ``deliveries`` tables of one database, as seen by one run (``owner``).

    Reading needs no lease. Writing to a send needs its lease: ``start`` or ``acquire`` takes
    it, and from then on every write transaction is fenced by it (see ``store/lease.py``).
    """

    def __init__(
        self,
        engine: sa.Engine,
        owner: Owner | None = None,
        *,
        lease_timeout: timedelta = LEASE_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.owner = owner or Owner.this_process()
        self.lease_timeout = lease_timeout
        self._held: tuple[int, str] | None = None  # (send id, issue) whose lease this run holds
        # The send run writes from two threads; taking turns here is cheaper than SQLite's
        # busy handler, which sleeps in steps of milliseconds.
        self._write_lock = threading.Lock()

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction, one at a time within this process, fenced by the lease held."""
        with self._write_lock, self.engine.begin() as conn:
            if self._held is not None:
                lease.fence(conn, *self._held, self.owner.run_id)
            yield conn

    # --- the send row -----------------------------------------------------------------------

    def start(self, issue: str, subject: str, transport: str, triggered_by: str) -> SendRecord:
        """Create the send of ``issue``, its lease held by this run; refuse when it exists.

        The unique ``issue`` column decides races: of two runs starting together, one inserts.
        """
        now = now_utc()
        try:
            with self._writing() as conn:
                conn.execute(
                    sends.insert().values(
                        issue=issue,
                        subject=subject,
                        transport=transport,
                        status=SendStatus.RUNNING.value,
                        started_at=now,
                        triggered_by=triggered_by,
                        **lease.lease_values(self.owner, now),
                    )
                )
        except sa.exc.IntegrityError as err:
            existing = self.find(issue)
            raise refusal(existing) if existing else SendError(str(err.orig)) from err
        record = self.find(issue)
        assert record is not None
        self._held = (record.id, issue)
        return record

    def acquire(self, record: SendRecord, transport: str) -> tuple[SendRecord, Holder | None]:
        """Take the lease of an existing send (``--resume``) and mark it running.

        Returns the record and the stale holder taken over from, if there was one. Refuses with
        ``SendBusyError`` while a live run holds it.
        """
        changes: dict[str, object] = {"status": SendStatus.RUNNING.value, "transport": transport}
        for _attempt in range(5):
            with self.engine.connect() as conn:
                holder = lease.holder_of(conn, record.id)
            if holder is not None and not holder.is_stale(now_utc(), self.lease_timeout):
                raise lease.busy(record.issue, holder)
            # A write-first transaction: on SQLite it waits for the write lock instead of failing.
            with self._write_lock, self.engine.begin() as conn:
                if lease.take(conn, record.id, self.owner, holder, changes):
                    break
            # The holder changed between reading and taking: read it again.
        else:
            raise SendError(f"could not take the lease of {record.issue}: it kept changing hands")
        self._held = (record.id, record.issue)
        updated = self.find(record.issue)
        assert updated is not None
        return updated, holder

    def heartbeat(self) -> None:
        """Prove the run is alive (a fenced, empty write); ``LeaseLostError`` if taken over."""
        with self._writing():
            pass

    def finish(self, send_id: int, status: SendStatus) -> None:
        """Close the run: ``completed`` (stamped with its first finishing time) or ``interrupted``.

        The lease is given up in the same transaction.
        """
        values: dict[str, object] = {"status": status.value}
        if status is SendStatus.COMPLETED:
            # A send completes once: resending unconfirmed copies later keeps that date.
            values["finished_at"] = sa.func.coalesce(sends.c.finished_at, now_utc())
        with self._writing() as conn:
            conn.execute(sends.update().where(sends.c.id == send_id).values(**values))
            lease.release(conn, send_id, self.owner.run_id)
        self._held = None

    @contextmanager
    def keeping_alive(self, stop: threading.Event) -> Iterator[None]:
        """Beat the lease's heartbeat in a thread while the block runs.

        A lost lease sets ``stop``; the next fenced write raises ``LeaseLostError`` anyway.
        """
        done = threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                try:
                    self.heartbeat()
                except LeaseLostError:
                    stop.set()
                    return
                except DATABASE_ERRORS:
                    continue  # a busy database now and then: the next beat tries again

        thread = threading.Thread(target=beat, name="send-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    # --- batches ----------------------------------------------------------------------------

    def mark_in_flight_unconfirmed(self, send_id: int) -> int:
        """Rows still ``pending`` were in flight when a run died: they may have gone out."""
        with self._writing() as conn:
            return mark_in_flight(conn, send_id)

    def claim_ids(
        self,
        send_id: int,
        batch: int,
        ids: Sequence[int],
        message_ids: MessageIds,
        *,
        variant: str | None = None,
        status: LedgerStatus = LedgerStatus.PENDING,
    ) -> set[int] | None:
        """Claim those of ``ids`` still active and without a row, in one transaction.

        Every row gets ``variant`` (the one rendering the batch is sent). ``status=SKIPPED``
        records readers who are not sent the issue at all (nothing of theirs in it): final rows,
        never handed to a transport. Returns None when that is all of them (the usual case),
        else the set of ids claimed.
        """
        with self._claiming() as conn:
            claimed = claim_rows(
                conn, send_id, ids, message_ids, batch=batch, status=status, variant=variant
            )
        return None if len(claimed) == len(ids) else claimed

    def claim_ids_and_skip(
        self,
        send_id: int,
        batch: int,
        ids: Sequence[int],
        message_ids: MessageIds,
        variant: str | None,
        skip: tuple[int, Sequence[int]] | None,
        record: Sequence[Outcome] = (),
    ) -> tuple[set[int] | None, int]:
        """``claim_ids`` of a batch, and with it (one transaction, one commit) the readers of
        ``skip`` = (batch, ids) recorded ``skipped`` and the outcomes of delivered batches in
        ``record`` (as ``record`` would store them). Returns the claim's answer and how many
        were recorded skipped."""
        skipped: set[int] = set()
        with self._claiming() as conn:
            for done in record:
                _record_outcome(conn, send_id, done)
            if skip is not None:
                skip_batch, skip_ids = skip
                skipped = claim_rows(
                    conn,
                    send_id,
                    skip_ids,
                    message_ids,
                    batch=skip_batch,
                    status=LedgerStatus.SKIPPED,
                )
            claimed = claim_rows(conn, send_id, ids, message_ids, batch=batch, variant=variant)
        return (None if len(claimed) == len(ids) else claimed), len(skipped)

    @contextmanager
    def _claiming(self) -> Iterator[sa.Connection]:
        """A fenced write that inserts ledger rows; a duplicate row means a second writer."""
        try:
            with self._writing() as conn:
                yield conn
        except sa.exc.IntegrityError as err:
            # Only a run without the lease could collide here; the fence makes that impossible.
            raise SendError("another process is sending this issue at the same time") from err

    def claim_unconfirmed(
        self, send_id: int, batch: int, *, limit: int, variant: str | None = None
    ) -> list[ClaimedRow]:
        """Claim ``unconfirmed`` rows of still-active subscribers again (``--resend-unconfirmed``).

        Only rows of ``variant`` (None: rows with no variant recorded), so a batch is one variant.
        """
        same_variant = (
            deliveries.c.variant.is_(None) if variant is None else deliveries.c.variant == variant
        )
        chosen = (
            sa.select(deliveries.c.id)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(*_resendable(send_id), same_variant)
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
        )
        with self._writing() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(chosen.scalar_subquery()))
                .values(status=LedgerStatus.PENDING.value, batch=batch, error=RESENDING)
                .values(resent=deliveries.c.resent + 1, updated_at=now_utc())
            )
            return self._batch_rows(conn, send_id, batch)

    @staticmethod
    def _batch_rows(conn: sa.Connection, send_id: int, batch: int) -> list[ClaimedRow]:
        """The ``pending`` rows of one batch, with the subscriber's name."""
        query = (
            sa.select(
                deliveries.c.subscriber_id,
                deliveries.c.email,
                subscribers.c.name,
                deliveries.c.message_id,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == LedgerStatus.PENDING.value,
                deliveries.c.batch == batch,
            )
            # By row id: the (send_id, status) index yields that order, so no scan of the send.
            .order_by(deliveries.c.id)
        )
        return [ClaimedRow(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]

    def record(self, send_id: int, done: Outcome, *, give_back: Sequence[int] = ()) -> None:
        """Store what the transport said about each recipient of a batch, in one transaction.

        ``give_back``: ids of the batch the transport did not send (it stopped part-way),
        released as ``release`` does, in the same transaction, before the rest is recorded.
        """
        with self._writing() as conn:
            if give_back:
                _release(conn, send_id, done.batch, give_back)
            _record_outcome(conn, send_id, done)

    def release(self, send_id: int, batch: int) -> int:
        """Give a batch back (the transport refused it whole): ``--resume`` will send it again."""
        with self._writing() as conn:
            return _release(conn, send_id, batch, None)
