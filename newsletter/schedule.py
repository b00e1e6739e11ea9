"""When each issue goes out: APScheduler 3.x triggers and the foreground scheduler.

The only module that imports ``apscheduler``. The job itself is ``newsletter.monthly.run_monthly``,
an ordinary call; this module only decides *when* to call it. Jobs live in a persistent
``SQLAlchemyJobStore`` in the project's database, so a restart knows which send it missed, and
APScheduler's ``misfire_grace_time`` (``send.misfire_grace``) decides whether it is made up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from newsletter.config import SendRule, Settings
from newsletter.doi.client import Client
from newsletter.errors import ConfigError
from newsletter.monthly import (
    Decision,
    Outcome,
    Readiness,
    check_issue,
    format_duration,
    month_status,
    preflight,
    run_monthly,
)
from newsletter.store.database import Database
from newsletter.store.failures import DATABASE_ERRORS
from newsletter.values.month import is_month, parse_month
from newsletter.watch import watch_archive

log = logging.getLogger(__name__)

MONTHLY_JOB = "monthly-send"
RECHECK_JOB = "recheck-{month}"
FIRE_AT_JOB = "fire-at-{when}"
DEFAULT_RECHECK = timedelta(minutes=5)
JOBS_TABLE = "apscheduler_jobs"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 and 7 = Sunday
_SHORTEST_MONTH = {2: 28, 4: 30, 6: 30, 9: 30, 11: 30}  # months that lack some day numbers


# --- triggers ------------------------------------------------------------------------------------


def trigger_for(rule: SendRule, tz: ZoneInfo) -> BaseTrigger:
    """The APScheduler trigger of a send rule: ``cron`` if given, else ``day`` at ``time``, in ``tz``."""
    trigger = _trigger(rule, tz)
    if trigger.get_next_fire_time(None, datetime.now(tz)) is None:
        key = "send.cron" if rule.cron else "send.day"
        raise ConfigError(f"schedule.yaml: `{key}`: this rule never matches a date")
    return trigger


def _trigger(rule: SendRule, tz: ZoneInfo) -> BaseTrigger:
    if rule.cron:
        return _crontab_trigger(rule.cron, tz)
    at = {"hour": rule.time.hour, "minute": rule.time.minute, "second": 0, "timezone": tz}
    main = CronTrigger(day=rule.day, **at)
    if not rule.day.isdigit() or int(rule.day) <= 28:
        return main
    # Day 29-31: months without that day send on their last day, so no month is skipped.
    short = [str(m) for m, days in _SHORTEST_MONTH.items() if days < int(rule.day)]
    return OrTrigger([main, CronTrigger(month=",".join(short), day="last", **at)])


def _crontab_trigger(line: str, tz: ZoneInfo) -> CronTrigger:
    minute, hour, day, month, weekday = line.split()
    try:
        weekdays = _crontab_weekdays(weekday)
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekdays,
            second=0,
            timezone=tz,
        )
    except ValueError as err:
        raise ConfigError(
            f"schedule.yaml: `send.cron`: {line!r} is not a crontab line this scheduler "
            f'understands ({err}); expected 5 fields such as "0 9 * * 2"'
        ) from err


def _crontab_weekdays(field: str) -> str:
    """Crontab weekdays (0/7 = Sunday) as APScheduler names: its 3.x numbers start at Monday."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in weekday field {field!r}")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _weekday_number(first_text), _weekday_number(last_text)
            last = 7 if last == 0 and first > 0 else last  # "fri-sun": Sunday closes the week
        else:
            first = _weekday_number(base)
            last = 6 if step_text else first
        if last < first:
            raise ValueError(f"weekday range {base!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"unknown weekday {text!r}")


def next_fire_times(settings: Settings, n: int, after: datetime) -> list[datetime]:
    """The next ``n`` send times strictly after ``after``, in the settings' time zone."""
    trigger = trigger_for(settings.send, settings.timezone)
    if after.tzinfo is None:
        after = after.replace(tzinfo=settings.timezone)
    times: list[datetime] = []
    previous = after
    while len(times) < n:
        fire = trigger.get_next_fire_time(previous, previous)
        if fire is None:
            break
        local = fire.astimezone(settings.timezone)
        # A wall time that occurs twice (the hour the clocks go back) is one send, not two.
        if not times or local.replace(tzinfo=None) != times[-1].replace(tzinfo=None):
            times.append(local)
        previous = fire
    return times


def latest_fire_time(settings: Settings, now: datetime, within: timedelta) -> datetime | None:
    """The last send time at or before ``now`` and no older than ``within``, or None."""
    trigger = trigger_for(settings.send, settings.timezone)
    start = now - within - timedelta(seconds=1)
    latest: datetime | None = None
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return None if latest is None else latest.astimezone(settings.timezone)


def month_of(fire_time: datetime) -> str:
    """The issue a send time sends: ``issues/YYYY-MM.md`` of its local month."""
    return fire_time.strftime("%Y-%m")


# --- the work ahead ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueAhead:
    """An issue file not sent yet: its month, its status, and the send time the rule gives it."""

    month: str
    status: str  # ready, draft, has errors (N), being sent, send failed …
    send_at: datetime | None  # None: the rule has no send time in that month


def send_time_in(settings: Settings, month: str) -> datetime | None:
    """The send time of ``month`` (the rule's first in that month, local), or None if it has none."""
    year, number = parse_month(month)
    start = datetime(year, number, 1, tzinfo=settings.timezone) - timedelta(seconds=1)
    first = next_fire_times(settings, 1, start)
    return first[0] if first and month_of(first[0]) == month else None


def issues_ahead(
    settings: Settings,
    database: Database | None,
    since: str,
    *,
    known: Mapping[str, str] | None = None,
) -> list[IssueAhead]:
    """Every issue file of ``since`` or a later month that is not sent yet, by month.

    ``database`` None (none exists yet): nothing has been sent, and none is created to say so.
    ``known``: statuses already worked out (month → status), so no file is checked twice.
    """
    known = known or {}
    months = sorted(
        path.stem
        for path in settings.issues_dir.glob("*.md")
        if is_month(path.stem) and path.stem >= since
    )
    ahead: list[IssueAhead] = []
    for month in months:
        status = known.get(month) or issue_status(settings, database, month)
        if status != SENT_STATUS:
            ahead.append(IssueAhead(month, status, send_time_in(settings, month)))
    return ahead


SENT_STATUS = "already sent"


def issue_status(settings: Settings, database: Database | None, month: str) -> str:
    """``month_status``, or only the file's readiness when there is no database yet."""
    if database is not None:
        return month_status(settings, database, month)
    check = check_issue(settings, month)
    if check.readiness is Readiness.ERRORS and check.errors:
        return f"has errors ({check.errors})"
    return check.readiness.value


# --- running once (cron, systemd timers) --------------------------------------------------------


def run_once(
    settings: Settings, database: Database, *, now: datetime, stop: threading.Event | None = None
) -> Decision | None:
    """Do what the scheduler would do now, then return: for cron or a systemd timer.

    Acts on the latest send time if it is within ``misfire_grace`` (a fresh fire) or its month is
    still waiting for the issue to become ready; otherwise there is nothing to do (None).
    """
    preflight(settings)
    rule = settings.send
    fired_at = latest_fire_time(settings, now, max(rule.misfire_grace, rule.wait_for_ready))
    if fired_at is None:
        return None
    month = month_of(fired_at)
    if now - fired_at > rule.misfire_grace:
        claim = database.claims.read(month)
        if claim is None or claim.outcome != Outcome.WAITING.value:
            return None
    return run_monthly(settings, database, month, now=now, fired_at=fired_at, stop=stop)


# --- the foreground scheduler --------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What the jobs need; kept in the process, because job arguments are pickled into the database."""

    settings: Settings
    database: Database
    stop: threading.Event
    recheck_every: timedelta
    scheduler: BackgroundScheduler


_active: _Context | None = None
_active_lock = threading.Lock()


@contextmanager
def _activated(context: _Context) -> Iterator[None]:
    global _active
    with _active_lock:
        if _active is not None:
            raise ConfigError("a scheduler is running in this process already")
        _active = context
    try:
        yield
    finally:
        with _active_lock:
            _active = None


def _context() -> _Context:
    if _active is None:
        raise RuntimeError("no scheduler is running in this process")
    return _active


class _SharedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """A job store that another scheduler process may share by mistake.

    That process may update or remove a job (a one-off fire, a finished recheck) between our
    read and our write; the claim row in ``schedule_claims`` keeps the send single, so a job
    that vanished meanwhile is no error.
    """

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was removed by another scheduler meanwhile", job.id)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.debug("job %s was removed by another scheduler meanwhile", job_id)


def run_scheduler(
    settings: Settings,
    database: Database,
    *,
    stop: threading.Event,
    recheck_every: timedelta = DEFAULT_RECHECK,
    fire_at: datetime | None = None,
) -> None:
    """Run the scheduler until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT).

    ``fire_at`` adds one extra send time (for trying a deployment); ``recheck_every`` is how often
    a month whose issue is not ready yet is looked at again.
    """
    trigger = trigger_for(settings.send, settings.timezone)  # a bad cron line fails before start
    preflight(settings)
    scheduler = _new_scheduler(settings, database)
    context = _Context(settings, database, stop, recheck_every, scheduler)
    with _activated(context):
        _start_paused(scheduler)
        try:
            _install_monthly(scheduler, trigger, settings.send.misfire_grace)
            if fire_at is not None:
                _install_fire_at(scheduler, fire_at.astimezone(settings.timezone), settings)
            scheduler.add_listener(_on_missed, EVENT_JOB_MISSED)
            scheduler.resume()
            _log_next(scheduler, settings)
            stop.wait()
            log.info("scheduler stopping (a send in progress stops after its current batch)")
        finally:
            scheduler.shutdown(wait=True)
    log.info("scheduler stopped")


def _new_scheduler(settings: Settings, database: Database) -> BackgroundScheduler:
    store = _SharedJobStore(engine=database.engine, tablename=JOBS_TABLE)
    return BackgroundScheduler(
        jobstores={"default": store},
        # One worker: a recheck never runs beside a send in the same process.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={
            "coalesce": True,  # a restart after several missed fires runs (at most) the last one
            "max_instances": 1,
            "misfire_grace_time": _seconds(settings.send.misfire_grace),
        },
        timezone=settings.timezone,
        daemon=True,
    )


def _start_paused(scheduler: BackgroundScheduler) -> None:
    """Start without running anything yet, so stored jobs can be inspected before they fire."""
    try:
        scheduler.start(paused=True)
    except DATABASE_ERRORS as err:
        # Two schedulers starting at the same instant may both create the jobs table.
        if "already exists" not in str(err):
            raise ConfigError(f"database: cannot start the scheduler: {err}") from err
        scheduler.start(paused=True)


def _seconds(duration: timedelta) -> int:
    return max(1, int(duration.total_seconds()))


def _install_monthly(
    scheduler: BackgroundScheduler, trigger: BaseTrigger, grace: timedelta
) -> None:
    """Keep the stored monthly job (and its missed fire time) unless the rule changed."""
    stored = scheduler.get_job(MONTHLY_JOB)
    if stored is not None and repr(stored.trigger) == repr(trigger):
        if stored.misfire_grace_time != _seconds(grace):
            stored.modify(misfire_grace_time=_seconds(grace))
        return
    if stored is not None:
        log.info("send rule changed: %s (was %s)", trigger, stored.trigger)
    scheduler.add_job(
        "newsletter.schedule:_monthly_fire",
        trigger,
        id=MONTHLY_JOB,
        name="send this month's issue",
        replace_existing=True,
        misfire_grace_time=_seconds(grace),
    )


def _install_fire_at(scheduler: BackgroundScheduler, when: datetime, settings: Settings) -> None:
    job_id = FIRE_AT_JOB.format(when=when.isoformat())
    if scheduler.get_job(job_id) is not None:
        return
    scheduler.add_job(
        "newsletter.schedule:_one_fire",
        DateTrigger(run_date=when, timezone=settings.timezone),
        args=[month_of(when), when.isoformat()],
        id=job_id,
        name=f"send {month_of(when)} at {when.isoformat()}",
        replace_existing=True,
        misfire_grace_time=_seconds(settings.send.misfire_grace),
    )


def _log_next(scheduler: BackgroundScheduler, settings: Settings) -> None:
    for job in scheduler.get_jobs():
        when = job.next_run_time
        shown = when.astimezone(settings.timezone).isoformat() if when else "never"
        log.info("scheduled: %s, next at %s", job.name, shown)


# --- the jobs (module-level, referenced by name in the job store) ------------------------------


def _monthly_fire() -> None:
    """The monthly job: work out which send time this run is for, then send its month's issue."""
    context = _context()
    settings = context.settings
    now = datetime.now(settings.timezone)
    fired_at = latest_fire_time(settings, now, settings.send.misfire_grace) or now
    _fire(context, month_of(fired_at), fired_at, now)
    _watch_dois(settings)


def _watch_dois(settings: Settings) -> None:
    """Beside the monthly send: re-check the archive's DOIs; log each new notice (never fails)."""
    try:
        result = watch_archive(
            settings.archive_dir, settings.issues_dir, Client.from_env(settings.sender.email)
        )
    except Exception:
        log.exception("doi watch: error: the archive's DOIs could not be re-checked")
        return
    for change in result.changes:
        log.warning("doi watch: %s (the archive page shows a notice)", change)
    if result.failed:
        log.warning("doi watch: stopped after %d DOI(s): %s", result.checked, result.failed)
    else:
        log.info(
            "doi watch: %d DOI(s) checked, %d new notice(s)", result.checked, len(result.changes)
        )


def _one_fire(month: str, fired_at: str) -> None:
    """A one-off send time (``--fire-at``)."""
    context = _context()
    _fire(context, month, datetime.fromisoformat(fired_at), datetime.now(context.settings.timezone))


def _recheck(month: str, fired_at: str) -> None:
    """Look again at a month whose issue was not ready; stop looking once it is decided."""
    context = _context()
    _fire(context, month, datetime.fromisoformat(fired_at), datetime.now(context.settings.timezone))


def _fire(context: _Context, month: str, fired_at: datetime, now: datetime) -> None:
    try:
        outcome = run_monthly(
            context.settings,
            context.database,
            month,
            now=now,
            fired_at=fired_at,
            stop=context.stop,
        ).outcome
    except Exception:  # e.g. the database is locked or gone: look again rather than lose the month
        log.exception("issue %s: error: could not decide; looking again later", month)
        outcome = Outcome.WAITING
    job_id = RECHECK_JOB.format(month=month)
    scheduler = context.scheduler
    if outcome is Outcome.WAITING:
        if scheduler.get_job(job_id) is None:
            scheduler.add_job(
                "newsletter.schedule:_recheck",
                IntervalTrigger(seconds=_seconds(context.recheck_every)),
                args=[month, fired_at.isoformat()],
                id=job_id,
                name=f"look again whether {month} is ready",
                replace_existing=True,
                misfire_grace_time=None,  # a recheck is never too late: the claim has the deadline
            )
    elif scheduler.get_job(job_id) is not None:
        scheduler.remove_job(job_id)


def _on_missed(event: JobExecutionEvent) -> None:
    """APScheduler skipped a send time (the scheduler was not running): say so, with the month."""
    context = _context()
    settings = context.settings
    if not event.job_id.startswith((MONTHLY_JOB, "fire-at-")):
        return
    scheduled: Any = event.scheduled_run_time
    local = scheduled.astimezone(settings.timezone)
    log.error(
        "issue %s: missed: the send time %s passed while the scheduler was not running, longer "
        "ago than send.misfire_grace (%s); not sending late (send it by hand: newsletter send %s)",
        month_of(local),
        local.strftime("%Y-%m-%d %H:%M %Z"),
        format_duration(settings.send.misfire_grace),
        month_of(local),
    )
