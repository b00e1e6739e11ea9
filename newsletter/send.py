"""Send one issue to the list: render once per variant, claim batches in the ledger, deliver, record.

Readers with topics get a variant of the issue (``newsletter/variants.py``): each variant is
rendered once for the run (``newsletter/renderings.py``) and every batch is one variant.

The loop is crash-safe because the ledger claims each batch (``pending``) before the transport
sees it and records the results after (see ``store.ledger``). Per recipient only strings are
made: two signed links and a Message-ID. Nothing per recipient outlives its batch, so memory
stays flat however long the list is.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.archive import generic_links, write_archive
from newsletter.batches import Delivery, Personaliser, Pipeline, one_malloc_arena
from newsletter.config import Settings
from newsletter.delivery import get_transport
from newsletter.delivery.base import DeliveryResult, Transport
from newsletter.errors import (
    DeliveryError,
    LeaseLostError,
    SendError,
    TemporaryDeliveryError,
)
from newsletter.mime import check_header, new_message_id
from newsletter.models import (
    Issue,
    LedgerStatus,
    OutgoingMessage,
    Recipient,
    RenderedIssue,
)
from newsletter.renderings import Renderings
from newsletter.store.database import Database
from newsletter.store.failures import DATABASE_ERRORS
from newsletter.store.ledger import (
    Ledger,
    MessageIds,
    SendRecord,
    SendStatus,
    refusal,
)
from newsletter.store.send_report import SendReport as SendReport  # re-exported
from newsletter.store.send_report import send_report as send_report  # re-exported
from newsletter.tokens import LinkSigner, load_signer
from newsletter.values.address import AddressError, normalise_address
from newsletter.values.clock import now_utc
from newsletter.variants import Variants, ordered_counts

log = logging.getLogger(__name__)

TEST_PREFIX = "[TEST] "


class Progress:
    """Told how a send run advances; the CLI draws a bar or writes log lines. Does nothing here."""

    def start(self, total: int, *, issue: str, transport: str) -> None:
        """The run begins: ``total`` recipients are expected in this run."""

    def advance(self, sent: int, failed: int) -> None:
        """One batch is done: ``sent`` accepted and ``failed`` refused in it."""

    def skip(self, count: int) -> None:
        """``count`` readers were recorded ``skipped`` (none of their topics in the issue)."""

    def finish(self, summary: SendSummary) -> None:
        """The run ended (completed, interrupted or failed)."""


class RunStatus(enum.StrEnum):
    """How a send run ended (``SendSummary.status``); the send's own state is ``SendStatus``."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    DRY_RUN = "dry-run"  # nothing was sent or recorded


@dataclass(frozen=True, kw_only=True)
class SendSummary:
    """What a send run did (this run's numbers) and where the send stands (the ledger's)."""

    issue: str
    subject: str
    transport: str
    status: RunStatus
    recipients: int  # expected in this run (dry run: would be sent)
    sent: int  # accepted in this run
    failed: int  # refused in this run
    found_unconfirmed: int  # rows left in flight by an earlier run, now unconfirmed
    totals: dict[LedgerStatus, int] = field(default_factory=dict)  # the whole send, all runs
    started_at: datetime = field(default_factory=now_utc)
    seconds: float = 0.0
    error: str | None = None  # why the run stopped early
    skipped: int = 0  # recorded skipped in this run (`only` readers with none of their topics)
    variants: tuple[tuple[str, int], ...] = ()  # dry run: (variant key, readers), most first

    @property
    def rate(self) -> float:
        """Recipients per second in this run."""
        return (self.sent + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def unconfirmed(self) -> int:
        return self.totals.get(LedgerStatus.UNCONFIRMED, 0)


@dataclass(frozen=True, kw_only=True)
class SendPlan:
    """What ``newsletter send`` is about to do, for its confirmation question."""

    issue: str
    subject: str
    transport: str
    recipients: int  # would receive it in this run
    existing: SendRecord | None  # an earlier run of this issue's send
    unconfirmed: int  # unconfirmed rows of still-active subscribers


# --- planning and reporting -------------------------------------------------------------------


def transport_for(settings: Settings, transport_name: str | None) -> str:
    """The transport a run uses: ``--transport``, else ``delivery.transport``."""
    return transport_name or settings.delivery.transport


def plan_send(
    settings: Settings,
    database: Database,
    issue: Issue,
    *,
    transport_name: str | None = None,
    resend_unconfirmed: bool = False,
) -> SendPlan:
    """Count who would get ``issue`` now, without changing anything."""
    ledger = database.ledger()
    existing = ledger.find(issue.month)
    unconfirmed = ledger.resendable(existing.id) if existing else 0
    # A completed send takes no one new (people who joined since wait for the next issue).
    if existing is not None and existing.status is SendStatus.COMPLETED:
        recipients = 0
    else:
        recipients = ledger.remaining(existing.id if existing else None)
    recipients += unconfirmed if resend_unconfirmed else 0
    return SendPlan(
        issue=issue.month,
        subject=issue.subject,
        transport=transport_for(settings, transport_name),
        recipients=recipients,
        existing=existing,
        unconfirmed=unconfirmed,
    )


def plan_variants(
    ledger: Ledger, existing: SendRecord | None, variants: Variants
) -> list[tuple[str, int]]:
    """(variant key, readers) of the readers who would get the issue of ``variants`` now (its
    send so far: ``existing``), most readers first."""
    if existing is not None and existing.status is SendStatus.COMPLETED:
        return []
    groups = ledger.topic_groups(existing.id if existing else None)
    return ordered_counts(variants.count_keys(groups))


# --- the send run ------------------------------------------------------------------------------


def send_issue(
    settings: Settings,
    database: Database,
    issue: Issue,
    *,
    transport_name: str | None = None,
    resume: bool = False,
    resend_unconfirmed: bool = False,
    dry_run: bool = False,
    triggered_by: str = "cli",
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    transport: Transport | None = None,
) -> SendSummary:
    """Send ``issue`` to every active subscriber who has not had it; see the module docstring.

    ``transport`` (an instance) overrides ``transport_name``; tests pass a memory transport.
    """
    resume = resume or resend_unconfirmed
    ledger = database.ledger()
    name = transport.name if transport is not None else transport_for(settings, transport_name)
    existing = ledger.find(issue.month)
    if existing is not None and not resume:
        raise refusal(existing)
    renderings = Renderings(settings, issue)
    renderings.get(None)  # the default rendering first: a template error stops the run here
    planned = plan_variants(ledger, existing, renderings.variants)
    renderings.prepare(key for key, _ in planned)  # a variant failing its checks: nothing sent
    if dry_run:
        plan = plan_send(
            settings, database, issue, transport_name=name, resend_unconfirmed=resend_unconfirmed
        )
        return SendSummary(
            issue=issue.month,
            subject=issue.subject,
            transport=name,
            status=RunStatus.DRY_RUN,
            recipients=plan.recipients,
            sent=0,
            failed=0,
            found_unconfirmed=0,
            variants=tuple(planned),
        )
    completed = existing is not None and existing.status is SendStatus.COMPLETED
    if existing is not None and completed and not resend_unconfirmed:
        return _settled(ledger, existing, issue)
    # A fresh send's readers were just counted (per topic choice): no second count of the list.
    fresh_total = sum(count for _, count in planned) if existing is None else None
    if fresh_total == 0:
        # Recording a send to nobody would make the issue "already sent" for everyone later.
        raise SendError(
            f"no active subscribers: {issue.month} was not sent "
            "(add or import subscribers first, see `newsletter subscribers --help`)"
        )
    signer = load_signer(settings)
    chosen = transport if transport is not None else get_transport(name, settings.delivery)
    if existing is None:
        record, previous = ledger.start(issue.month, issue.subject, name, triggered_by), None
    else:
        record, previous = ledger.acquire(existing, name)
        if previous is not None:
            log.warning(
                "took over the send of %s from %s: that run stopped (no heartbeat)",
                issue.month,
                previous.describe(),
            )
    run = _Run(settings, issue, renderings, ledger, record, chosen, signer, progress or Progress())
    return run.execute(
        resend_unconfirmed=resend_unconfirmed,
        new_recipients=not completed,
        stop=stop or threading.Event(),
        known_total=fresh_total,
    )


def _settled(ledger: Ledger, record: SendRecord, issue: Issue) -> SendSummary:
    """A completed send asked to resume: nothing to do, nothing changed."""
    return SendSummary(
        issue=issue.month,
        subject=issue.subject,
        transport=record.transport,
        status=RunStatus.COMPLETED,
        recipients=0,
        sent=0,
        failed=0,
        found_unconfirmed=0,
        totals=ledger.counts(record.id),
        started_at=record.started_at,
    )


class _Run:
    """One run of the loop over batches for one send record."""

    def __init__(
        self,
        settings: Settings,
        issue: Issue,
        renderings: Renderings,
        ledger: Ledger,
        record: SendRecord,
        transport: Transport,
        signer: LinkSigner,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.issue = issue
        self.renderings = renderings
        self.rendered = renderings.default
        self.ledger = ledger
        self.record = record
        self.transport = transport
        self.progress = progress
        self.personaliser = Personaliser(signer, settings.links)
        self.message_ids = MessageIds(issue.month, settings.sender.email)
        self.batch_size = max(1, int(transport.max_batch))
        self.delivery = Delivery(
            ledger, record.id, transport, self._message, progress.advance, progress.skip
        )
        self.found_unconfirmed = 0
        self.started = time.monotonic()
        self.started_at = now_utc()

    def execute(
        self,
        *,
        resend_unconfirmed: bool,
        new_recipients: bool,
        stop: threading.Event,
        known_total: int | None = None,
    ) -> SendSummary:
        """Deliver every batch, then close the send (completed or interrupted).

        ``known_total``: the readers of a send just started, as counted a moment before (the
        progress total and the summary's ``recipients``); None: count them here.
        """
        self.found_unconfirmed = self.ledger.mark_in_flight_unconfirmed(self.record.id)
        if self.found_unconfirmed:  # also in the summary, which the CLI prints as a warning
            log.info(
                "%d recipient(s) of %s were in flight when an earlier run stopped: unconfirmed",
                self.found_unconfirmed,
                self.issue.month,
            )
        if known_total is not None and not resend_unconfirmed and new_recipients:
            total = known_total  # a new send: nobody has a row yet, nobody to resend
        else:
            resendable = self.ledger.resendable(self.record.id) if resend_unconfirmed else 0
            total = resendable + (self.ledger.remaining(self.record.id) if new_recipients else 0)
        self.progress.start(total, issue=self.issue.month, transport=self.record.transport)
        one_malloc_arena()  # before the run's threads start (heartbeat, transport, stages)
        try:
            with self.ledger.keeping_alive(stop), self.transport:
                finished = self._loop(resend_unconfirmed, new_recipients, stop)
            if not finished:
                self.ledger.heartbeat()  # a stop for a lost lease is an error, not a pause
        except LeaseLostError as err:
            # Not ours any more: write nothing, the run that took over owns every row now.
            summary = self._summary(RunStatus.INTERRUPTED, total, str(err), read_totals=False)
            self.progress.finish(summary)
            raise
        except DeliveryError as err:
            self.ledger.finish(self.record.id, SendStatus.INTERRUPTED)
            summary = self._summary(
                RunStatus.INTERRUPTED, total, _stopped_because(err, self.issue.month)
            )
            self.progress.finish(summary)
            raise type(err)(summary.error or str(err)) from err
        except BaseException:
            # Unknown failure: rows still pending stay so; --resume reports them unconfirmed.
            self._finish_quietly()
            raise
        if not finished:
            self.ledger.finish(self.record.id, SendStatus.INTERRUPTED)
            summary = self._summary(RunStatus.INTERRUPTED, total, _resume_hint(self.issue.month))
            self.progress.finish(summary)
            return summary
        self.ledger.finish(self.record.id, SendStatus.COMPLETED)
        summary = self._summary(RunStatus.COMPLETED, total, None)
        self._archive(summary)
        self.progress.finish(summary)
        return summary

    def _loop(self, resend_unconfirmed: bool, new_recipients: bool, stop: threading.Event) -> bool:
        """Run batches until none is left (True) or ``stop`` is set (False)."""
        batch = self.ledger.next_batch_number(self.record.id)
        if resend_unconfirmed:
            # One variant at a time: each reader gets again exactly the variant first sent.
            for variant in self.ledger.unconfirmed_variants(self.record.id):
                while rows := self.ledger.claim_unconfirmed(
                    self.record.id, batch, limit=self.batch_size, variant=variant
                ):
                    recipients = tuple(
                        self.personaliser.recipient(r.subscriber_id, r.email, r.name, r.message_id)
                        for r in rows
                    )
                    outcome = self.delivery.deliver(batch, recipients, variant)
                    self.ledger.record(self.record.id, outcome)
                    batch += 1
                    if stop.is_set():
                        return False
        if not new_recipients:
            return True
        pipeline = Pipeline(
            self.delivery,
            self.personaliser,
            self.message_ids,
            batch_size=self.batch_size,
            stop=stop,
            variant_of=self.renderings.variants.key_for_choice,
            default_variant=self.renderings.variants.default,
        )
        return pipeline.run(batch)

    def _message(self, recipients: tuple[Recipient, ...], variant: str | None) -> OutgoingMessage:
        rendered = self.renderings.get(variant)
        if variant == self.renderings.variants.default:
            variant = None
        return outgoing(self.settings, rendered, recipients, rendered.subject, variant=variant)

    def _summary(
        self, status: RunStatus, total: int, error: str | None, *, read_totals: bool = True
    ) -> SendSummary:
        return SendSummary(
            issue=self.issue.month,
            subject=self.issue.subject,
            transport=self.record.transport,
            status=status,
            recipients=total,
            sent=self.delivery.tally.sent,
            failed=self.delivery.tally.failed,
            found_unconfirmed=self.found_unconfirmed,
            totals=self.ledger.counts(self.record.id) if read_totals else {},
            started_at=self.started_at,
            seconds=time.monotonic() - self.started,
            error=error,
            skipped=self.delivery.tally.skipped,
        )

    def _archive(self, summary: SendSummary) -> None:
        record = self.ledger.find(self.issue.month) or self.record
        try:
            write_archive(
                self.settings.archive_dir,
                self.issue,
                self.rendered,
                links=self.settings.links,
                record=record,
                counts=summary.totals,
            )
        except OSError as err:
            raise SendError(
                f"the issue was sent, but its archive copy in {self.settings.archive_dir} "
                f"could not be written: {err}"
            ) from err

    def _finish_quietly(self) -> None:
        try:
            self.ledger.finish(self.record.id, SendStatus.INTERRUPTED)
        except LeaseLostError:
            pass  # another run owns the send now: nothing of ours to close
        except DATABASE_ERRORS:
            log.exception("could not mark the send of %s interrupted", self.issue.month)


def _stopped_because(err: DeliveryError, month: str) -> str:
    if isinstance(err, TemporaryDeliveryError):
        return f"{err}; the batch in flight was not sent. {_resume_hint(month)}"
    return f"{err}; fix the cause, then {_resume_hint(month)[0].lower()}{_resume_hint(month)[1:]}"


def _resume_hint(month: str) -> str:
    return f"Run `newsletter send {month} --resume` to continue where it stopped."


def outgoing(
    settings: Settings,
    rendered: RenderedIssue,
    recipients: tuple[Recipient, ...],
    subject: str,
    *,
    variant: str | None = None,
) -> OutgoingMessage:
    """The message of one batch: ``rendered`` from the sender, to ``recipients``.

    ``variant``: the variant key when not the default (None for the default variant).
    """
    return OutgoingMessage(
        subject=subject,
        html=rendered.html,
        text=rendered.text,
        sender_name=settings.sender.name,
        sender_email=settings.sender.email,
        reply_to=settings.sender.reply_to,
        recipients=recipients,
        issue_month=rendered.month,
        list_id=settings.sender.list_id,
        variant=variant,
    )


# --- test copies -------------------------------------------------------------------------------


def send_test(
    settings: Settings,
    issue: Issue,
    addresses: Sequence[str],
    *,
    transport_name: str | None = None,
    transport: Transport | None = None,
) -> list[DeliveryResult]:
    """One ``[TEST]`` copy of ``issue`` to each address; not recorded in the ledger."""
    wanted = [_test_address(address) for address in addresses]
    if not wanted:
        raise SendError("--test-to: give at least one address")
    rendered = Renderings(settings, issue).get(None)
    links = generic_links(settings.links)
    recipients = [
        Recipient(
            subscriber_id=None,
            email=address,
            name=None,
            substitutions=links,
            message_id=new_message_id(settings.sender.email),
            list_unsubscribe_url=None,
        )
        for address in wanted
    ]
    chosen = transport or get_transport(transport_for(settings, transport_name), settings.delivery)
    size = max(1, int(chosen.max_batch))
    results: list[DeliveryResult] = []
    with chosen:
        for start in range(0, len(recipients), size):
            batch = tuple(recipients[start : start + size])
            message = outgoing(settings, rendered, batch, TEST_PREFIX + rendered.subject)
            results.extend(chosen.send_batch(message))
    return results


def _test_address(address: str) -> str:
    """A ``--test-to`` address, checked by the rule every address meets, and fit for a header."""
    try:
        cleaned = normalise_address(address)
    except AddressError as err:
        raise SendError(f"--test-to {address!r}: not an email address") from err
    return check_header("--test-to", cleaned)
