"""The files of ``newsletter build``: the email as a sample subscriber would get it, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from newsletter.config import Links, Sender
from newsletter.mime import build_message, new_message_id
from newsletter.models import OutgoingMessage, Recipient, RenderedIssue, personalise

SAMPLE_NAME = "Sample Reader"
SAMPLE_EMAIL = "reader@example.org"
SAMPLE_TOKEN = "sample-token"  # noqa: S105 - not a secret: a token that opens nothing


def sample_recipient(sender: Sender, links: Links) -> Recipient:
    """A made-up reader whose links have the right shape but a token that opens nothing."""
    return Recipient.with_links(
        subscriber_id=None,
        email=SAMPLE_EMAIL,
        name=SAMPLE_NAME,
        unsubscribe_url=links.unsubscribe_url(SAMPLE_TOKEN),
        preferences_url=links.preferences_url(SAMPLE_TOKEN),
        message_id=new_message_id(sender.email),
    )


def email_files(
    rendered: RenderedIssue, *, sender: Sender, links: Links, date: datetime | None = None
) -> dict[str, bytes]:
    """``email.html``, ``email.txt`` (placeholders filled), ``email.mjml`` and ``email.eml``."""
    recipient = sample_recipient(sender, links)
    message = OutgoingMessage(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        sender_name=sender.name,
        sender_email=sender.email,
        reply_to=sender.reply_to,
        recipients=(recipient,),
        issue_month=rendered.month,
        list_id=sender.list_id,
    )
    eml = build_message(message, recipient, date=date)
    return {
        "email.html": personalise(rendered.html, recipient.substitutions).encode("utf-8"),
        "email.txt": personalise(rendered.text, recipient.substitutions).encode("utf-8"),
        "email.mjml": rendered.mjml.encode("utf-8"),
        "email.eml": eml.as_bytes(),
    }


def write_folder(target: Path, files: Mapping[str, bytes]) -> None:
    """Replace ``target`` with a folder of ``files`` all at once: a failure leaves the old one intact."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    previous: Path | None = None
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the build is not secret
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if target.exists():
            # rename() may replace an empty folder: move the old build out of the way first
            previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, previous)
        os.replace(staging, target)
    except BaseException:
        if previous is not None and not target.exists():
            os.replace(previous, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
