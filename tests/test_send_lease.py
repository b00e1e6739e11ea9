"""The send lease: one run owns a send, a second refuses, a dead one is taken over, and a run
that lost its lease (it stalled) can neither claim nor record. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.delivery.base import DeliveryResult
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import LeaseLostError, SendBusyError, SendError
from newsletter.models import Recipient
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.lease import Owner
from newsletter.store.ledger import Ledger, MessageIds, Outcome, SendStatus, refusal
from newsletter.store.schema import deliveries, sends
from tests.dbkit import db
from tests.sendkit import MONTH, load_issue, seed

IDS = MessageIds(MONTH, "editor@example.org")


@pytest.fixture
def listed(db_settings: Settings) -> Settings:
    """Settings on each kind of database, with 30 people (27 active) on the list."""
    seed(db_settings, 30)
    return db_settings


def _ledger(settings: Settings, **options: object) -> Ledger:
    """A run's view of the ledger through its own engine, as a separate process would have."""
    return Ledger(open_database(settings.database_url), Owner.this_process(), **options)  # type: ignore[arg-type]


def _dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _ledger_of_a_dead_process(settings: Settings) -> Ledger:
    owner = dataclasses.replace(Owner.this_process(), pid=_dead_pid())
    return Ledger(open_database(settings.database_url), owner)


def _active(settings: Settings) -> list[int]:
    ledger = _ledger(settings)
    return [c.subscriber_id for c in ledger.candidates(0, after_id=0, limit=1000)]


def _accepted(ids: list[int]) -> tuple[DeliveryResult, ...]:
    return tuple(
        DeliveryResult(
            Recipient(i, f"person{i}@example.com", None, {}, "<m>", None), True, "sg-1", None
        )
        for i in ids
    )


def test_a_second_run_refuses_while_the_holder_is_alive(listed: Settings) -> None:
    first = _ledger(listed)
    record = first.start(MONTH, "Subject", "outbox", "cli")
    second = _ledger(listed)
    with pytest.raises(SendBusyError) as refused:
        second.acquire(record, "smtp")
    pid, host = first.owner.pid, first.owner.host
    assert f"{MONTH} is being sent by pid {pid} on {host} since " in str(refused.value)
    assert str(refused.value).endswith("; nothing done")
    # A plain start of the same issue says the same, and nothing changed.
    with pytest.raises(SendBusyError, match="is being sent by"):
        second.start(MONTH, "Subject", "smtp", "cli")
    found = first.find(MONTH)
    assert found is not None and found.transport == "outbox"
    assert found.holder is not None and found.holder.run_id == first.owner.run_id
    assert isinstance(refusal(found), SendBusyError)


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(
    listed: Settings,
) -> None:
    gone = _ledger_of_a_dead_process(listed)
    record = gone.start(MONTH, "Subject", "sendgrid", "cli")
    found = gone.find(MONTH)
    assert found is not None
    assert "its process stopped" in str(refusal(found))  # a plain send points at --resume
    taker = _ledger(listed)
    taken, previous = taker.acquire(record, "sendgrid")
    assert previous is not None and previous.pid == gone.owner.pid
    assert taken.holder is not None and taken.holder.run_id == taker.owner.run_id
    assert taken.status is SendStatus.RUNNING


def test_a_run_that_stalled_and_lost_its_lease_can_neither_claim_nor_record(
    listed: Settings,
) -> None:
    ids = _active(listed)
    stalled = _ledger(listed)
    record = stalled.start(MONTH, "Subject", "sendgrid", "cli")
    assert stalled.claim_ids(record.id, 1, ids[:5], IDS) is None  # batch 1 is on the wire
    # The holder stops beating (a paused VM); with a short timeout the lease goes stale.
    taker = _ledger(listed, lease_timeout=timedelta(seconds=0))
    _, previous = taker.acquire(record, "sendgrid")
    assert previous is not None and previous.run_id == stalled.owner.run_id
    assert taker.mark_in_flight_unconfirmed(record.id) == 5

    with pytest.raises(LeaseLostError, match="lost its lease"):
        stalled.claim_ids(record.id, 2, ids[5:10], IDS)
    with pytest.raises(LeaseLostError):
        stalled.record(record.id, Outcome(1, 5, _accepted(ids[:5])))
    with pytest.raises(LeaseLostError):
        stalled.release(record.id, 1)
    with pytest.raises(LeaseLostError):
        stalled.finish(record.id, SendStatus.INTERRUPTED)
    with pytest.raises(LeaseLostError):
        stalled.heartbeat()
    engine = open_database(listed.database_url)
    with engine.connect() as conn:
        statuses = Counter(conn.scalars(sa.select(deliveries.c.status)))
        status = conn.scalar(sa.select(sends.c.status))
    assert statuses == {"unconfirmed": 5}  # nothing of the stalled run's was written
    assert status == "running"  # the taker's run goes on
    assert taker.claim_ids(record.id, 2, ids[5:10], IDS) is None


def test_runs_racing_for_a_stale_lease_one_wins(listed: Settings) -> None:
    gone = _ledger_of_a_dead_process(listed)
    record = gone.start(MONTH, "Subject", "sendgrid", "cli")
    racers = [_ledger(listed) for _ in range(6)]
    start = threading.Barrier(len(racers))
    outcomes: list[str] = []

    def race(ledger: Ledger) -> None:
        start.wait()
        try:
            ledger.acquire(record, "sendgrid")
            outcomes.append("won")
        except SendBusyError:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(ledger,)) for ledger in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * 5 + ["won"]


def test_two_sends_started_together_deliver_once(listed: Settings) -> None:
    issue = load_issue(listed)
    transport = MemoryTransport()
    start = threading.Barrier(2)
    results: list[object] = []

    def run() -> None:
        start.wait()
        try:
            results.append(send_issue(listed, db(listed), issue, transport=transport).status)
        except SendError as err:
            results.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "completed" in results
    refused = [r for r in results if isinstance(r, SendError)]
    assert len(refused) == 1
    assert "is being sent by" in str(refused[0]) or "already sent" in str(refused[0])
    counted = Counter(recipient.email for _, recipient in transport.delivered)
    assert len(counted) == 27 and set(counted.values()) == {1}


def test_finishing_gives_the_lease_up(listed: Settings) -> None:
    summary = send_issue(listed, db(listed), load_issue(listed), transport=MemoryTransport())
    assert summary.status == "completed"
    found = _ledger(listed).find(MONTH)
    assert found is not None and found.holder is None
