"""The monthly job: send ``issues/YYYY-MM.md`` once it is ready, exactly once, and say why each time.

An ordinary library call (no scheduler inside): the scheduler calls it at each send time and then
every few minutes while the month waits for its issue; cron or a systemd timer can call it through
``newsletter scheduler --once``. A row in ``schedule_claims`` (unique per month) is the month's
state, so two processes running it at once send once:

    (no row) ──not ready──▶ waiting ──ready──▶ sending ──▶ sent
        │                      │                   └────▶ failed
        └──ready──▶ sending    └──past wait_for_ready──▶ gave_up

``sending`` is taken with one INSERT (from no row) or one conditional UPDATE (from ``waiting``):
whichever process loses that race sees it taken and skips.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.config import Settings
from newsletter.delivery import get_provider, get_transport
from newsletter.doi.client import Client
from newsletter.doi.compare import DoiCheck, check_issue_dois
from newsletter.doi.store import MetadataStore
from newsletter.errors import AlreadySentError, DeliveryError, NewsletterError
from newsletter.issues import lint_issue, load_topics
from newsletter.models import Issue, IssueStatus
from newsletter.send import RunStatus, SendSummary, send_issue
from newsletter.store.claims import Claim, ClaimRow, ScheduleClaims
from newsletter.store.database import Database
from newsletter.store.ledger import SendStatus
from newsletter.tokens import load_signer

log = logging.getLogger(__name__)
doi_log = logging.getLogger(f"{__name__}.dois")  # the online re-check of an issue's DOIs


class Outcome(enum.StrEnum):
    """What one run decided for a month."""

    SENT = "sent"  # the issue went out now
    WAITING = "waiting"  # not ready (draft, missing, errors); looked at again later
    SKIPPED = "skipped"  # already sent, being sent, or given up before
    GAVE_UP = "gave_up"  # still not ready after wait_for_ready: nothing goes out this month
    MISSED = "missed"  # the send time passed longer ago than misfire_grace: not sent late
    FAILED = "failed"  # the send started and failed; finish it with `newsletter send --resume`


class Readiness(enum.StrEnum):
    READY = "ready"
    DRAFT = "draft"
    MISSING = "missing"
    ERRORS = "has errors"


@dataclass(frozen=True)
class Decision:
    """One run's decision for one month, with the reason (also logged as one line)."""

    month: str
    outcome: Outcome
    reason: str
    summary: SendSummary | None = None


@dataclass(frozen=True)
class IssueCheck:
    """Whether a month's issue file could be sent now, and why not."""

    readiness: Readiness
    detail: str
    issue: Issue | None = None
    errors: int = 0  # error findings in the file


_LEVELS = {
    Outcome.SENT: logging.INFO,
    Outcome.WAITING: logging.WARNING,
    Outcome.SKIPPED: logging.INFO,
    Outcome.GAVE_UP: logging.ERROR,
    Outcome.MISSED: logging.ERROR,
    Outcome.FAILED: logging.ERROR,
}


def run_monthly(
    settings: Settings,
    database: Database,
    month: str,
    *,
    now: datetime,
    fired_at: datetime,
    stop: threading.Event | None = None,
) -> Decision:
    """Decide and act for ``month`` whose send time was ``fired_at``; log the decision."""
    decision = _decide(settings, database, month, now, fired_at, stop)
    log.log(_LEVELS[decision.outcome], "issue %s: %s: %s", month, decision.outcome, decision.reason)
    return decision


def _decide(
    settings: Settings,
    database: Database,
    month: str,
    now: datetime,
    fired_at: datetime,
    stop: threading.Event | None,
) -> Decision:
    claims = database.claims
    claim = claims.read(month)
    if claim is not None and claim.outcome != Claim.WAITING:
        return Decision(month, Outcome.SKIPPED, _claimed_reason(claim, settings))
    started = _send_started(database, month, settings)
    if started is not None:
        completed, why = started
        if completed:
            claims.finish(month, fired_at, Claim.SENT)
        return Decision(month, Outcome.SKIPPED, why)
    if claim is None and now - fired_at > settings.send.misfire_grace:
        return Decision(month, Outcome.MISSED, _missed_reason(settings, month, now, fired_at))
    window_start = claim.claimed_at if claim is not None else fired_at
    deadline = window_start + settings.send.wait_for_ready
    check = check_issue(settings, month)
    ready = check.issue is not None and check.readiness is Readiness.READY
    if now > deadline and (claim is not None or not ready):
        claims.finish(month, window_start, Claim.GAVE_UP, only_waiting=True)
        return Decision(month, Outcome.GAVE_UP, _gave_up_reason(settings, check, window_start))
    if ready and check.issue is not None:
        check = recheck_dois(settings, check)
        ready = check.readiness is Readiness.READY
    if not ready or check.issue is None:
        claims.insert(month, window_start, Claim.WAITING)
        until = _local(deadline, settings)
        return Decision(
            month,
            Outcome.WAITING,
            f"{check.detail}; it goes out as soon as it is ready, until {until} "
            f"(send.wait_for_ready), then this month is given up",
        )
    if not claims.take(month, window_start):
        claim = claims.read(month)
        assert claim is not None
        return Decision(month, Outcome.SKIPPED, _claimed_reason(claim, settings))
    return _send(settings, database, check.issue, stop)


def preflight(settings: Settings) -> None:
    """Refuse to start with a transport or signing key that cannot work (ConfigError), not at 09:00."""
    get_transport(settings.delivery.transport, settings.delivery)
    load_signer(settings)


# --- the issue file ------------------------------------------------------------------------------


def check_issue(settings: Settings, month: str) -> IssueCheck:
    """Whether ``issues/<month>.md`` exists, is valid and is marked ``ready``."""
    path = settings.issues_dir / f"{month}.md"
    shown = f"issues/{month}.md"
    if not path.is_file():
        return IssueCheck(Readiness.MISSING, f"{shown} does not exist")
    try:
        topics = load_topics(settings.topics_file)
    except NewsletterError as err:
        return IssueCheck(Readiness.ERRORS, f"the topic list cannot be read: {err}")
    issue, findings = lint_issue(path, topics, display_path=shown)
    if issue is None:
        errors = [finding for finding in findings if finding.is_error]
        first = f" (first: {errors[0]})" if errors else ""
        detail = f"{shown} has {len(errors)} error(s){first}"
        return IssueCheck(Readiness.ERRORS, detail, errors=len(errors))
    if issue.status is not IssueStatus.READY:
        return IssueCheck(Readiness.DRAFT, f"{shown} is a {issue.status} (status: ready sends it)")
    dois = check_issue_dois(issue, MetadataStore.beside(path), path=shown)
    if dois.has_errors:
        return _retracted(shown, dois)
    return IssueCheck(Readiness.READY, f"{shown} is ready", issue)


def recheck_dois(settings: Settings, check: IssueCheck) -> IssueCheck:
    """Re-check a ready issue's DOIs online before it is sent (records refreshed in the store).

    A retraction found now makes the issue not ready. When the network fails the stored records
    stand: a warning names when they were last checked, and the send goes ahead.
    """
    issue = check.issue
    assert issue is not None
    shown = f"issues/{issue.month}.md"
    client = Client.from_env(settings.sender.email)
    dois = check_issue_dois(
        issue, MetadataStore.beside(issue.path), path=shown, client=client, refresh=True
    )
    for finding in dois.findings:
        if finding.code == "doi-not-checked":
            doi_log.warning(
                "issue %s: %s; sending on the stored records",
                issue.month,
                finding.message,
            )
    if dois.has_errors:
        return _retracted(shown, dois)
    return check


def _retracted(shown: str, dois: DoiCheck) -> IssueCheck:
    errors = [finding for finding in dois.findings if finding.is_error]
    detail = f"{shown} has {len(errors)} DOI error(s) (first: {errors[0]})"
    return IssueCheck(Readiness.ERRORS, detail, errors=len(errors))


def month_status(settings: Settings, database: Database, month: str) -> str:
    """One word or two for ``newsletter schedule``: ready, draft, missing, has errors, sent …"""
    record = database.ledger().find(month)
    sent = record.status if record is not None else None
    if sent is SendStatus.COMPLETED:
        return "already sent"  # also after a failed scheduled send was finished by hand
    claim = database.claims.read(month)
    if claim is not None and claim.outcome in _CLAIM_STATUS:
        return _CLAIM_STATUS[claim.outcome]
    if sent is not None:
        return f"send {sent}"
    check = check_issue(settings, month)
    if check.readiness is Readiness.ERRORS and check.errors:
        return f"has errors ({check.errors})"
    return check.readiness.value


_CLAIM_STATUS = {
    Claim.SENT.value: "already sent",
    Claim.SENDING.value: "being sent",
    Claim.GAVE_UP.value: "given up",
    Claim.FAILED.value: "send failed",
}


# --- sending -------------------------------------------------------------------------------------


def _pull_suppressions(settings: Settings, database: Database, month: str) -> Decision | None:
    """Before a send, apply the transport's suppression lists if it keeps any; a Decision if that failed."""
    provider = get_provider(settings.delivery.transport)
    pull = provider.suppression_pull()
    if pull is None:
        return None
    claims = database.claims
    try:
        report = pull(settings, database.subscribers)
    except DeliveryError as err:
        claims.set(month, Claim.WAITING)  # let the next look try again
        return Decision(
            month,
            Outcome.WAITING,
            f"{provider.label}'s suppressions could not be pulled before sending ({err}); "
            "trying again at the next look",
        )
    except NewsletterError as err:
        return _failed(claims, month, f"{provider.label}'s suppressions could not be pulled: {err}")
    log.info("issue %s: suppression sync before sending: %s", month, report.summary())
    return None


def _send(
    settings: Settings,
    database: Database,
    issue: Issue,
    stop: threading.Event | None,
) -> Decision:
    month, claims = issue.month, database.claims
    refused = _pull_suppressions(settings, database, month)
    if refused is not None:
        return refused
    try:
        summary = send_issue(settings, database, issue, triggered_by="scheduler", stop=stop)
    except AlreadySentError as err:
        claims.set(month, Claim.SENT)
        return Decision(month, Outcome.SKIPPED, f"already sent: {err}")
    except NewsletterError as err:
        return _failed(claims, month, f"the send failed: {err}")
    except Exception as err:  # a daemon must record why, not die with the claim held
        log.exception("issue %s: the send failed unexpectedly", month)
        return _failed(claims, month, f"the send failed unexpectedly: {err!r}")
    if summary.status is not RunStatus.COMPLETED:
        why = summary.error or "it was stopped"
        return _failed(claims, month, f"the send stopped after {summary.sent} sent: {why}")
    claims.set(month, Claim.SENT)
    reason = (
        f"sent with {summary.transport} to {summary.sent} subscriber(s)"
        f"{f', {summary.failed} refused' if summary.failed else ''} in {summary.seconds:.1f} s"
    )
    return Decision(month, Outcome.SENT, reason, summary)


def _failed(claims: ScheduleClaims, month: str, why: str) -> Decision:
    claims.set(month, Claim.FAILED)
    hint = f"finish it with `newsletter send {month} --resume`"
    return Decision(month, Outcome.FAILED, why if hint in why else f"{why}; {hint}")


def _send_started(database: Database, month: str, settings: Settings) -> tuple[bool, str] | None:
    """(completed, why no send is needed) when the ledger has a send run of the month."""
    record = database.ledger().find(month)
    if record is None:
        return None
    started = _local(record.started_at, settings)
    by = record.triggered_by
    if record.status is SendStatus.COMPLETED:
        return True, f"already sent ({record.transport}, started {started} by {by})"
    return False, (
        f"a send of it started {started} by {by} and is {record.status}; "
        f"finish it with `newsletter send {month} --resume`"
    )


# --- reasons -------------------------------------------------------------------------------------


def _claimed_reason(claim: ClaimRow, settings: Settings) -> str:
    if claim.outcome == Claim.SENT:
        return f"already sent (claimed by {claim.owner})"
    if claim.outcome == Claim.SENDING:
        return (
            f"being sent by {claim.owner}; if that process died, finish the send with "
            f"`newsletter send {claim.issue} --resume`"
        )
    if claim.outcome == Claim.GAVE_UP:
        return "given up earlier: the issue was not ready within send.wait_for_ready"
    if claim.outcome == Claim.FAILED:
        return f"the send failed earlier; finish it with `newsletter send {claim.issue} --resume`"
    return f"claimed by {claim.owner} ({claim.outcome})"


def _missed_reason(settings: Settings, month: str, now: datetime, fired_at: datetime) -> str:
    late = format_duration(now - fired_at)
    return (
        f"the send time {_local(fired_at, settings)} passed {late} ago, longer than "
        f"send.misfire_grace ({format_duration(settings.send.misfire_grace)}); not sending late "
        f"(send it by hand: newsletter send {month})"
    )


def _gave_up_reason(settings: Settings, check: IssueCheck, window_start: datetime) -> str:
    waited = format_duration(settings.send.wait_for_ready)
    return (
        f"giving up for this month: not sent within send.wait_for_ready ({waited}) of "
        f"{_local(window_start, settings)}; {check.detail}"
    )


def _local(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.timezone).strftime("%Y-%m-%d %H:%M %Z")


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
