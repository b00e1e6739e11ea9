"""A real ``newsletter scheduler`` process: fires within seconds, sends once, survives restarts.

Each process runs ``python -m newsletter scheduler`` in a project copy, logging to a file the
test reads. ``--fire-at`` adds a one-off send time a few seconds ahead; one test uses the real
monthly rule (a ``cron`` line for the next minute). Every wait is bounded and every process is
killed in teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import Settings, load_settings
from newsletter.models import SubscriberStatus
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from tests.conftest import REPO
from tests.peers.sendgrid_server import SendGridServer
from tests.peers.sendgrid_suppressions import SuppressionLists
from tests.schedkit import ACTIVE, add_people, edit_schedule, outbox_recipients, write_issue

pytestmark = pytest.mark.slow  # each test waits for real send times, seconds ahead

TORONTO = ZoneInfo("America/Toronto")
WAIT = 60.0  # seconds: the longest any single expected log line may take


class Scheduler:
    """One ``newsletter scheduler`` subprocess and its log file."""

    count = 0

    def __init__(self, project: Path, env: dict[str, str], *args: str) -> None:
        Scheduler.count += 1
        self.log = project.parent / f"scheduler-{Scheduler.count}.log"
        self.project = project
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--project", str(project), "scheduler", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=project,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first log line matching ``pattern``; fails with the log if it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.MULTILINE)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no log line matching {pattern!r} within {timeout:.0f} s:\n{self.text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process and wait for it to exit; its exit code."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the scheduler did not stop within {timeout} s:\n{self.text()}")

    def kill(self) -> None:
        """SIGKILL: the machine went down, nothing is cleaned up."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log_file.close()


Spawn = Callable[..., Scheduler]  # spawn(*args, env=None, where=project) -> Scheduler


@pytest.fixture
def spawn(project: Path) -> Iterator[Spawn]:
    started: list[Scheduler] = []

    def start(*args: str, env: dict[str, str] | None = None, where: Path = project) -> Scheduler:
        scheduler = Scheduler(where, {**base_env(), **(env or {})}, *args)
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.kill()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ahead(seconds: float) -> datetime:
    """A send time ``seconds`` from now, in Toronto, to the second."""
    return (datetime.now(TORONTO) + timedelta(seconds=seconds)).replace(microsecond=0)


def fire_args(when: datetime) -> list[str]:
    return ["--fire-at", when.replace(tzinfo=None).isoformat(), "--recheck-every", "1s"]


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(TORONTO)).total_seconds()))


@pytest.fixture
def month_ready(project: Path, settings: Settings) -> tuple[Settings, str, datetime]:
    """The current month's issue, ready, and three active subscribers (plus two never mailed)."""
    when = ahead(6)
    month = when.strftime("%Y-%m")
    write_issue(project, month, "ready")
    add_people(settings)
    return settings, month, when


def sent_lines(*schedulers: Scheduler, month: str) -> int:
    return sum(s.text().count(f"issue {month}: sent:") for s in schedulers)


def test_fires_within_seconds_sends_once_and_a_restart_does_not_resend(
    spawn: Spawn, month_ready: tuple[Settings, str, datetime]
) -> None:
    settings, month, when = month_ready
    first = spawn(*fire_args(when))
    first.wait_for(rf"issue {month}: sent: sent with outbox to 3 subscriber\(s\)")
    assert first.stop() == 0
    assert "scheduler stopped" in first.text()
    assert outbox_recipients(settings) == sorted(ACTIVE)

    again = spawn(*fire_args(when))
    again.wait_for(rf"issue {month}: skipped: already sent")
    assert again.stop(signal.SIGINT) == 0
    assert outbox_recipients(settings) == sorted(ACTIVE)
    assert sent_lines(first, again, month=month) == 1


def test_sends_once_through_the_sendgrid_stand_in(
    spawn: Spawn, project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    edit_schedule(project, transport="sendgrid")
    env = {
        "NEWSLETTER_SENDGRID_HOST": sendgrid_server.url,
        "SENDGRID_API_KEY": sendgrid_server.api_key,
    }
    settings = load_settings(project, env=env)
    when = ahead(6)
    month = when.strftime("%Y-%m")
    write_issue(project, month, "ready")
    add_people(settings)
    lists = SuppressionLists().install(sendgrid_server)
    lists.add("spam_reports", ACTIVE[2])

    scheduler = spawn(*fire_args(when), env=env)
    scheduler.wait_for(rf"issue {month}: sent: sent with sendgrid to 2 subscriber\(s\)")
    scheduler.stop()

    assert sorted(sendgrid_server.recipients()) == sorted(ACTIVE[:2])
    assert len(sendgrid_server.accepted) == 1
    store = SubscriberStore(open_database(settings.database_url))
    complained = store.get(ACTIVE[2])
    assert complained is not None and complained.status is SubscriberStatus.COMPLAINED
    assert "suppression sync before sending" in scheduler.text()


def test_a_draft_is_sent_as_soon_as_it_becomes_ready(
    spawn: Spawn, project: Path, month_ready: tuple[Settings, str, datetime]
) -> None:
    settings, month, when = month_ready
    write_issue(project, month, "draft")
    scheduler = spawn(*fire_args(when))
    scheduler.wait_for(
        rf"WARNING newsletter\.monthly: issue {month}: waiting: issues/{month}\.md is a draft"
    )
    scheduler.wait_for(rf"Added job \"look again whether {month} is ready\"")
    write_issue(project, month, "ready")
    scheduler.wait_for(rf"issue {month}: sent:")
    scheduler.wait_for(rf"Removed job recheck-{month}")
    scheduler.stop()
    assert outbox_recipients(settings) == sorted(ACTIVE)


def test_a_fire_missed_inside_the_grace_is_sent_once_after_a_restart(
    spawn: Spawn, month_ready: tuple[Settings, str, datetime]
) -> None:
    settings, month, _ = month_ready
    when = ahead(15)
    down = spawn(*fire_args(when))
    down.wait_for(r"scheduled: send \d{4}-\d{2} at")
    down.kill()  # the machine goes down before the send time
    assert datetime.now(TORONTO) < when, "the scheduler took too long to start"
    sleep_until(when + timedelta(seconds=2))

    up = spawn(*fire_args(when))
    up.wait_for(rf"issue {month}: sent:")
    up.stop()
    assert outbox_recipients(settings) == sorted(ACTIVE)
    assert sent_lines(down, up, month=month) == 1


def test_a_fire_missed_beyond_the_grace_is_not_made_up(
    spawn: Spawn, project: Path, month_ready: tuple[Settings, str, datetime]
) -> None:
    settings, month, _ = month_ready
    edit_schedule(project, misfire_grace="2s")
    when = ahead(15)
    down = spawn(*fire_args(when))
    down.wait_for(r"scheduled: send \d{4}-\d{2} at")
    down.kill()
    assert datetime.now(TORONTO) < when, "the scheduler took too long to start"
    sleep_until(when + timedelta(seconds=5))

    up = spawn(*fire_args(when))
    up.wait_for(rf"ERROR newsletter\.schedule: issue {month}: missed: the send time")
    time.sleep(1)
    up.stop()
    assert outbox_recipients(settings) == []
    assert sent_lines(down, up, month=month) == 0


def test_two_schedulers_at_once_send_once(
    spawn: Spawn, month_ready: tuple[Settings, str, datetime]
) -> None:
    settings, month, _ = month_ready
    when = ahead(12)
    one = spawn(*fire_args(when))
    two = spawn(*fire_args(when))
    one.wait_for(r"scheduled: send \d{4}-\d{2} at")
    two.wait_for(r"scheduled: send \d{4}-\d{2} at")
    sleep_until(when + timedelta(seconds=1))
    deadline = time.monotonic() + WAIT
    while sent_lines(one, two, month=month) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # give the other process every chance to send a second time
    one.stop()
    two.stop()

    assert sent_lines(one, two, month=month) == 1, one.text() + two.text()
    assert outbox_recipients(settings) == sorted(ACTIVE)


def test_the_monthly_rule_a_minute_ahead_sends_once_also_after_downtime(
    spawn: Spawn, project: Path, clean_env: None
) -> None:
    """The real monthly job (no --fire-at): a cron line for the next minute, Toronto time.

    Two projects at once: in one the scheduler runs through the send time, then restarts; in the
    other the machine is down at the send time and the scheduler starts a few seconds after it.
    """
    now = datetime.now(TORONTO)
    fire = (now + timedelta(minutes=2 if now.second > 40 else 1)).replace(second=0, microsecond=0)
    month = fire.strftime("%Y-%m")
    edit_schedule(project, cron=f"{fire.minute} {fire.hour} * * *")
    other = project.parent / "other"
    shutil.copytree(project, other)
    settings = {}
    for where in (project, other):
        settings[where] = load_settings(where, env={})
        write_issue(where, month, "ready")
        add_people(settings[where])

    running = spawn("--recheck-every", "1s")
    down = spawn("--recheck-every", "1s", where=other)
    for scheduler in (running, down):
        scheduler.wait_for(rf"scheduled: send this month's issue, next at {fire.isoformat()}")
    down.kill()
    assert datetime.now(TORONTO) < fire, "the scheduler took too long to start"

    running.wait_for(rf"issue {month}: sent:", timeout=150)
    assert running.stop() == 0
    sleep_until(fire + timedelta(seconds=3))
    up = spawn("--recheck-every", "1s", where=other)
    up.wait_for(rf"issue {month}: sent:")
    restarted = spawn("--recheck-every", "1s")
    restarted.wait_for(rf"next at {(fire + timedelta(days=1)).isoformat()}")
    time.sleep(2)
    up.stop()
    restarted.stop()

    for where in (project, other):
        assert outbox_recipients(settings[where]) == sorted(ACTIVE)
    assert sent_lines(running, restarted, month=month) == 1
    assert sent_lines(down, up, month=month) == 1
