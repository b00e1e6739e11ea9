"""The welcome issue: on confirming, a reader is sent the latest completed issue, in their variant.

``welcome: latest`` in ``schedule.yaml`` (the default) turns it on, ``none`` off. The copy is
recorded as that issue's delivery to the reader through the lease-fenced claim of
``store/welcome.py``, so a send or ``--resume`` of that issue never gives it to them twice, and
a run of that issue (or of a newer one) in progress is never raced: the reader is left to it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence

from newsletter.batches import Personaliser
from newsletter.config import Settings
from newsletter.delivery.base import DeliveryResult, Transport
from newsletter.errors import DeliveryError, NewsletterError
from newsletter.issues import load_topics, read_issue
from newsletter.models import LedgerStatus, SubscriberStatus
from newsletter.renderings import Renderings
from newsletter.send import outgoing
from newsletter.store import welcome as ledger
from newsletter.store.database import Database
from newsletter.store.lease import Owner
from newsletter.store.ledger import MessageIds
from newsletter.tokens import LinkSigner
from newsletter.variants import SKIP, Variants

log = logging.getLogger(__name__)


class Welcome(enum.StrEnum):
    """What became of one reader's welcome issue."""

    SENT = "sent"
    REFUSED = "refused"  # the transport refused it (recorded failed) or failed whole (undone)
    SKIPPED = "skipped"  # reads only their topics, none in that issue: recorded skipped
    OFF = "off"  # welcome: none
    NO_ISSUE = "no-issue"  # no send has completed yet
    LEFT_TO_SEND = "left-to-send"  # a run holds the issue, or a newer send is under way
    ALREADY = "already"  # the reader has that issue already (or is not active)


def subject_of(settings: Settings, subject: str) -> str:
    return f"Welcome to {settings.sender.name}: {subject}"


def send_welcome(
    settings: Settings,
    database: Database,
    subscriber_id: int,
    *,
    transport: Callable[[], Transport],
    signer: LinkSigner,
) -> Welcome:
    """Send the reader the latest completed issue in their variant, recorded in its ledger."""
    if settings.welcome == "none":
        return Welcome.OFF
    engine = database.engine
    latest = ledger.latest_completed(engine)
    if latest is None:
        return Welcome.NO_ISSUE
    newer = ledger.newer_unfinished(engine, latest.issue)
    if newer is not None:
        log.info(
            "no welcome issue for subscriber %s: the send of %s reaches them", subscriber_id, newer
        )
        return Welcome.LEFT_TO_SEND
    reader = database.subscribers.get_by_id(subscriber_id)
    if reader is None or reader.status is not SubscriberStatus.ACTIVE:
        return Welcome.ALREADY
    try:
        issue = read_issue(
            settings.issues_dir / f"{latest.issue}.md", load_topics(settings.topics_file)
        )
    except NewsletterError as err:
        log.error("no welcome issue for subscriber %s: %s", subscriber_id, err)
        return Welcome.NO_ISSUE
    variants = Variants(issue)
    key = variants.key_for(reader.topics, reader.topic_mode)
    message_ids = MessageIds(issue.month, settings.sender.email)
    message_id = message_ids.for_id(subscriber_id)
    owner = Owner.this_process()
    if key == SKIP:
        taken = ledger.claim(
            engine,
            latest,
            subscriber_id,
            owner,
            message_ids=message_ids,
            variant=None,
            status=LedgerStatus.SKIPPED,
        )
        return Welcome.SKIPPED if taken else Welcome.LEFT_TO_SEND
    rendered = Renderings(settings, issue).get(key)
    if not ledger.claim(engine, latest, subscriber_id, owner, message_ids=message_ids, variant=key):
        return _why_not(database, latest)
    recipient = Personaliser(signer, settings.links).recipient(
        subscriber_id, reader.email, reader.name, message_id
    )
    message = outgoing(
        settings,
        rendered,
        (recipient,),
        subject_of(settings, rendered.subject),
        variant=None if key == variants.default else key,
    )
    results: Sequence[DeliveryResult] | None
    try:
        with transport() as chosen:
            results = chosen.send_batch(message)
    except DeliveryError as err:
        log.error("the welcome issue to subscriber %s could not be sent: %s", subscriber_id, err)
        results = None
    ledger.record(engine, latest, subscriber_id, owner, results)
    if results and results[0].accepted:
        log.info(
            "welcome issue %s (variant %s) sent to subscriber %s", issue.month, key, subscriber_id
        )
        return Welcome.SENT
    return Welcome.REFUSED


def _why_not(database: Database, latest: ledger.LatestSend) -> Welcome:
    """The claim said no: a run holds the lease, or the reader has that issue already."""
    record = database.ledger().find(latest.issue)
    if record is not None and record.holder is not None:
        return Welcome.LEFT_TO_SEND
    return Welcome.ALREADY
