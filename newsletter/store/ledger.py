"""The send ledger: one ``sends`` row per issue, one ``deliveries`` row per (issue, subscriber).

One run at a time owns a send: it holds the send's lease (``store/lease.py``), and every write
of the run is fenced by it, so a second process, or a run that stalled and was taken over,
can never claim or record alongside the holder. A batch is claimed (its rows inserted as
``pending``) in one transaction *before* the transport is called, and its results recorded in
one transaction after. So a crash leaves exactly the
in-flight batch ``pending``; ``--resume`` turns those rows ``unconfirmed`` and never silently
resends them. The unique (send, subscriber) constraint makes a second copy impossible.
Claiming is one ``INSERT … SELECT`` per batch (the database picks the next active subscribers
with no row yet, by id), so nothing per subscriber crosses into Python but the batch itself.
"""

from __future__ import annotations

import enum
import json
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple, Protocol

import sqlalchemy as sa

from newsletter.errors import AlreadySentError, LeaseLostError, SendError
from newsletter.models import LedgerStatus, Recipient, SubscriberStatus
from newsletter.store import lease
from newsletter.store.failures import DATABASE_ERRORS
from newsletter.store.lease import HEARTBEAT_SECONDS, LEASE_TIMEOUT, Holder, Owner
from newsletter.store.schema import deliveries, sends, subscribers
from newsletter.values.clock import aware, now_utc

ERROR_MAX = 1000  # deliveries.error length
RESENDING = "unconfirmed earlier; sent again with --resend-unconfirmed"


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


class Ledger:
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

    def find(self, issue: str) -> SendRecord | None:
        """The send of ``issue``, if it has one."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sends).where(sends.c.issue == issue)).first()
        return _record(row) if row else None

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

    def next_batch_number(self, send_id: int) -> int:
        """One more than the highest batch number used by the send so far."""
        with self.engine.connect() as conn:
            highest = conn.scalar(
                sa.select(sa.func.max(deliveries.c.batch)).where(deliveries.c.send_id == send_id)
            )
        return int(highest or 0) + 1

    def mark_in_flight_unconfirmed(self, send_id: int) -> int:
        """Rows still ``pending`` were in flight when a run died: they may have gone out."""
        with self._writing() as conn:
            return mark_in_flight(conn, send_id)

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

    def unconfirmed_variants(self, send_id: int) -> list[str | None]:
        """The variants of ``unconfirmed`` rows of still-active subscribers (None: from 0.1)."""
        query = (
            sa.select(deliveries.c.variant)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == LedgerStatus.UNCONFIRMED.value,
                subscribers.c.status == SubscriberStatus.ACTIVE.value,
            )
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(conn.scalars(query), key=lambda v: (v is None, v or ""))

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
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == LedgerStatus.UNCONFIRMED.value,
                subscribers.c.status == SubscriberStatus.ACTIVE.value,
                same_variant,
            )
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

    # --- reading ----------------------------------------------------------------------------

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
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == LedgerStatus.UNCONFIRMED.value,
                subscribers.c.status == SubscriberStatus.ACTIVE.value,
            )
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


class MessageIds:
    """Message-IDs made by the database while claiming: ``<ISSUE.TOKEN.NONCE@DOMAIN>``.

    TOKEN is the subscriber's id through a secret affine map of this run, ``(id * a + b) mod p``
    with ``p`` the prime 2**61 - 1: one per reader (a bijection), computable in SQL and here
    alike, and saying nothing of the id to whoever reads the header (``b`` is uniform). Unique
    (a fresh nonce per run), stored on the row, and reused when an unconfirmed recipient is sent
    again, so a receiving server can recognise the copy as the same message.
    """

    MODULUS = 2**61 - 1
    # ids below 2**32 times a multiplier below 2**31, plus b: no 64-bit SQL integer overflows.
    MULTIPLIER_BELOW = 2**31

    def __init__(self, issue: str, sender_email: str) -> None:
        domain = sender_email.rpartition("@")[2] or "newsletter.invalid"
        self.prefix = f"<{issue}."
        self.suffix = f".{secrets.token_hex(6)}@{domain}>"
        self.multiplier = 1 + secrets.randbelow(self.MULTIPLIER_BELOW - 1)
        self.offset = secrets.randbelow(self.MODULUS)

    def token(self, subscriber_id: int) -> int:
        return (subscriber_id * self.multiplier + self.offset) % self.MODULUS

    def for_id(self, subscriber_id: int) -> str:
        return f"{self.prefix}{self.token(subscriber_id)}{self.suffix}"


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
            error="the transport gave no result for this recipient",
            updated_at=now,
        )
    )


def _not_in_send(send_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(
        deliveries.c.send_id == send_id, deliveries.c.subscriber_id == subscribers.c.id
    )


_ACTIVE = (
    subscribers.c.status == SubscriberStatus.ACTIVE.value,
    subscribers.c.email.is_not(None),
)

# A reader's topic choice in one column, NULL for no topics: the common case costs nothing.
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
