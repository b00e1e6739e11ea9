"""SIGKILL a real ``newsletter send`` mid-run, then ``--resume``: nobody lost, nobody doubled silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.send import send_report
from tests.dbkit import db
from tests.peers.sendgrid_server import Fault, SendGridServer
from tests.sendkit import MONTH, ledger_rows, seed

BATCH = 50
PEOPLE = 600  # 540 active: 11 batches
KILL_IN_BATCH = 4  # the stand-in holds this request long enough to kill the sender during it
TIMEOUT = 60.0  # no step of this test waits longer


def run_env(server: SendGridServer, settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update(
        NEWSLETTER_SENDGRID_HOST=server.url,
        SENDGRID_API_KEY=server.api_key,
        NEWSLETTER_DATABASE_URL=settings.database_url,
    )
    return env


def newsletter(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--project", str(project), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=TIMEOUT)
    return process.returncode, output


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def sendgrid_project(
    project: Path, server: SendGridServer, concurrency: int = 1
) -> tuple[Settings, set[int], dict[str, str]]:
    """The project switched to SendGrid with small batches, PEOPLE seeded; the child's environment.

    One request at a time unless ``concurrency`` says otherwise: most tests here stop the sender
    during one particular request.
    """
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8").replace("transport: outbox", "transport: sendgrid")
    text = text.replace("concurrency: 8 ", f"concurrency: {concurrency} ")
    path.write_text(text.replace("batch_size: 1000", f"batch_size: {BATCH}"), encoding="utf-8")
    settings = load_settings(project, env={})
    active, _ = seed(settings, PEOPLE)
    return settings, active, run_env(server, settings)


@pytest.mark.slow
def test_sigkill_mid_send_then_resume_loses_no_one(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    settings, active, env = sendgrid_project(project, sendgrid_server)
    # Slow answers; the KILL_IN_BATCH-th request is held for seconds and still goes out after
    # the sender is dead: exactly the copy the ledger cannot know about.
    slow = [Fault(delay=0.1, process=True)] * (KILL_IN_BATCH - 1)
    sendgrid_server.inject(*slow, Fault(delay=2.0, process=True))

    sender = newsletter(project, env, "send", MONTH, "--yes")
    try:
        wait_for(lambda: sendgrid_server.accepted_count == KILL_IN_BATCH - 1, "three batches")
        # The fourth request has taken its 2 s fault: it is now waiting in the stand-in.
        wait_for(lambda: sendgrid_server.faults_left == 0, "the fourth request")
        sender.send_signal(signal.SIGKILL)
    finally:
        sender.wait(timeout=TIMEOUT)
    assert sender.returncode == -signal.SIGKILL
    wait_for(lambda: sendgrid_server.accepted_count == KILL_IN_BATCH, "the in-flight batch")
    in_flight = set(sendgrid_server.recipients()[-BATCH:])
    rows = ledger_rows(settings)
    pending = {email for email, status in rows.items() if status == "pending"}
    # The batch on the wire is pending; so may be the one before it if its results were still
    # being written (both went out: "unconfirmed" means exactly that).
    assert in_flight <= pending and len(pending) in (BATCH, 2 * BATCH)
    assert Counter(rows.values())["sent"] + len(pending) == KILL_IN_BATCH * BATCH

    code, output = finish(newsletter(project, env, "send", MONTH, "--yes"))
    assert code == 1 and "--resume" in output  # a plain send refuses an unfinished one

    code, output = finish(newsletter(project, env, "send", MONTH, "--yes", "--resume"))
    assert code == 0, output
    assert f"{len(pending)} recipient(s) were in flight" in output
    counted = Counter(sendgrid_server.recipients())
    everyone = {f"person{i}@example.com" for i in active}
    assert set(counted) == everyone and set(counted.values()) == {1}  # no one lost, no one twice
    report = send_report(db(settings), MONTH)
    unconfirmed = {e for e, status, _ in report.problems if status == "unconfirmed"}
    assert unconfirmed == pending
    assert report.record.status == "completed"

    args = ("send", MONTH, "--yes", "--resume", "--resend-unconfirmed")
    code, output = finish(newsletter(project, env, *args))
    assert code == 0, output
    counted = Counter(sendgrid_server.recipients())
    assert {e for e, n in counted.items() if n == 2} == pending  # resent only when asked
    message_ids: dict[str, set[str]] = {}
    for _, personalization in sendgrid_server.personalizations():
        email = personalization["to"][0]["email"]
        message_ids.setdefault(email, set()).add(personalization["headers"]["Message-ID"])
    assert all(len(message_ids[e]) == 1 for e in pending)  # the copy keeps its first Message-ID
    assert set(counted) == everyone and max(counted.values()) == 2
    assert set(ledger_rows(settings).values()) == {"sent"}

    code, output = finish(newsletter(project, env, "send", MONTH, "--yes"))
    assert code == 0 and "already sent on" in output and "nothing to do" in output


@pytest.mark.slow
def test_sigkill_with_batches_in_flight_leaves_them_all_unconfirmed_none_lost(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    """Four requests in flight when the sender dies: every batch that may have gone out is
    ``pending``, so ``unconfirmed`` after ``--resume``; nobody is lost or silently doubled."""
    settings, active, env = sendgrid_project(project, sendgrid_server, concurrency=4)
    sendgrid_server.latency = 0.5  # the stand-in still answers (and counts) after the kill
    sender = newsletter(project, env, "send", MONTH, "--yes")
    try:
        wait_for(lambda: sendgrid_server.accepted_count >= 2, "two batches")
        wait_for(lambda: sendgrid_server.in_flight >= 3, "batches in flight")
        sender.send_signal(signal.SIGKILL)
    finally:
        sender.wait(timeout=TIMEOUT)
    wait_for(lambda: sendgrid_server.in_flight == 0, "the batches in flight")
    received = set(sendgrid_server.recipients())
    rows = ledger_rows(settings)
    pending = {email for email, status in rows.items() if status == "pending"}
    sent = {email for email, status in rows.items() if status == "sent"}
    assert sent <= received <= sent | pending  # whatever went out is in the ledger
    assert 3 * BATCH <= len(pending) <= (4 + 2) * BATCH  # the window: up to 4 + 2 batches
    sendgrid_server.latency = 0.0

    code, output = finish(newsletter(project, env, "send", MONTH, "--yes", "--resume"))
    assert code == 0, output
    counted = Counter(sendgrid_server.recipients())
    everyone = {f"person{i}@example.com" for i in active}
    assert set(counted.values()) == {1} and everyone - set(counted) <= pending
    report = send_report(db(settings), MONTH)
    assert {e for e, status, _ in report.problems if status == "unconfirmed"} == pending

    args = ("send", MONTH, "--yes", "--resume", "--resend-unconfirmed")
    code, output = finish(newsletter(project, env, *args))
    assert code == 0, output
    counted = Counter(sendgrid_server.recipients())
    assert set(counted) == everyone  # no one lost
    assert {e for e, n in counted.items() if n == 2} <= pending  # doubled only when asked


@pytest.mark.slow
def test_sigterm_stops_after_the_current_batch_and_resume_finishes(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    settings, active, env = sendgrid_project(project, sendgrid_server)
    sendgrid_server.inject(*[Fault(delay=0.3, process=True)] * 4)

    sender = newsletter(project, env, "send", MONTH, "--yes")
    wait_for(lambda: sendgrid_server.accepted_count >= 1, "the first batch")
    sender.send_signal(signal.SIGTERM)
    code, output = finish(sender)
    assert code == 1, output
    assert "stopping after the current batch" in output and "--resume" in output
    rows = ledger_rows(settings)
    assert set(rows.values()) == {"sent"}  # nothing left in flight: a clean stop
    assert len(rows) == sendgrid_server.recipient_count < len(active)
    assert send_report(db(settings), MONTH).record.status == "interrupted"

    code, output = finish(newsletter(project, env, "send", MONTH, "--yes", "--resume"))
    assert code == 0, output
    counted = Counter(sendgrid_server.recipients())
    assert set(counted) == {f"person{i}@example.com" for i in active}
    assert set(counted.values()) == {1}


@pytest.mark.slow
def test_a_second_send_while_one_runs_refuses_and_does_nothing(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    _, active, env = sendgrid_project(project, sendgrid_server)
    held = threading.Event()  # the second request waits at the stand-in until the checks are done
    sendgrid_server.inject(Fault(process=True), Fault(hold=held, process=True))
    sender = newsletter(project, env, "send", MONTH, "--yes")
    try:
        wait_for(lambda: sendgrid_server.accepted_count >= 1, "the first batch")
        for extra in ((), ("--resume",), ("--resume", "--resend-unconfirmed")):
            code, output = finish(newsletter(project, env, "send", MONTH, "--yes", *extra))
            assert code == 1, output
            assert f"{MONTH} is being sent by pid {sender.pid} on " in output
            assert "nothing done" in output and "Traceback" not in output
    finally:
        held.set()
        code, output = finish(sender)
    assert code == 0, output
    counted = Counter(sendgrid_server.recipients())
    assert set(counted) == {f"person{i}@example.com" for i in active}
    assert set(counted.values()) == {1}


@pytest.mark.slow
def test_two_resumes_at_once_after_a_kill_deliver_once(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    settings, active, env = sendgrid_project(project, sendgrid_server)
    # The third request is held 1 s and still goes out after the kill: the batch the ledger
    # marked pending has reached the stand-in, so nobody is left unsent (a kill between the
    # ledger's "pending" and the request would leave that batch unconfirmed, never resent unasked).
    held = [Fault(delay=0.1, process=True)] * 2 + [Fault(delay=1.0, process=True)]
    sendgrid_server.inject(*held, *[Fault(delay=0.1, process=True)] * 27)
    sender = newsletter(project, env, "send", MONTH, "--yes")
    try:
        wait_for(lambda: sendgrid_server.accepted_count >= 2, "two batches")
        wait_for(lambda: sendgrid_server.faults_left == 27, "the third request in the stand-in")
        sender.send_signal(signal.SIGKILL)
    finally:
        sender.wait(timeout=TIMEOUT)
    wait_for(lambda: sendgrid_server.accepted_count == 3, "the held batch")

    resumes = [newsletter(project, env, "send", MONTH, "--yes", "--resume") for _ in range(2)]
    outcomes = sorted((finish(p) for p in resumes), key=lambda outcome: outcome[0])
    assert outcomes[0][0] == 0, outcomes[0][1]
    # The other one either found the lease held, or (started late) the send already complete.
    code, output = outcomes[1]
    assert (code == 1 and "is being sent by pid" in output) or (
        code == 0 and "nothing to do" in output
    ), output
    assert "took over the send" in outcomes[0][1] + outcomes[1][1]
    counted = Counter(sendgrid_server.recipients())
    assert set(counted.values()) == {1}  # nobody twice: unconfirmed rows are not resent unasked
    everyone = {f"person{i}@example.com" for i in active}
    assert set(counted) == everyone  # the held batch went out: nobody is left unsent
    report = send_report(db(settings), MONTH)
    unconfirmed = {e for e, status, _ in report.problems if status == "unconfirmed"}
    assert unconfirmed and unconfirmed <= everyone  # the batch in flight at the kill, reported
    assert report.record.status == "completed"
