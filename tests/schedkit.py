"""Helpers shared by the scheduler tests: schedule.yaml variants, issue files, a small list."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from newsletter.config import Settings, load_settings
from newsletter.models import SubscriberStatus
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from tests.conftest import REPO
from tests.sendkit import read_maildir

SAMPLE_ISSUE = REPO / "issues" / "2021-01.md"
ACTIVE = ("ana@example.com", "ben@example.com", "chloe@example.com")


def edit_schedule(project: Path, **send: str) -> None:
    """Set keys of the ``send:`` section (and ``timezone`` / ``transport``) in schedule.yaml."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    for key, value in send.items():
        if key == "timezone":
            text = re.sub(r"(?m)^timezone: .*$", f"timezone: {value}", text)
        elif key == "transport":
            text = re.sub(r"(?m)^  transport: .*$", f"  transport: {value}", text)
        else:
            pattern = rf"(?m)^  (# )?{key}: .*$"
            assert re.search(pattern, text), key
            text = re.sub(pattern, f'  {key}: "{value}"', text, count=1)
    path.write_text(text, encoding="utf-8")


def settings_for(project: Path, env: Mapping[str, str] | None = None, **send: str) -> Settings:
    edit_schedule(project, **send)
    return load_settings(project, env=dict(env or {}))


def write_issue(project: Path, month: str, status: str = "ready", *, broken: bool = False) -> Path:
    """``issues/<month>.md``: the sample issue with this status (``broken``: with an error)."""
    text = SAMPLE_ISSUE.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^status: .*$", f"status: {status}", text, count=1)
    if broken:
        text = text.replace("Citation:", "Citaton:", 1)
    path = project / "issues" / f"{month}.md"
    path.write_text(text, encoding="utf-8")
    return path


def add_people(settings: Settings) -> SubscriberStore:
    """Three active subscribers, one pending and one unsubscribed (who must never get mail)."""
    store = SubscriberStore(open_database(settings.database_url))
    for address in ACTIVE:
        store.add(address)
    store.add("pending@example.com", status=SubscriberStatus.PENDING)
    gone = store.add("gone@example.com")
    store.unsubscribe(gone.id, reason="asked to", source="cli")
    return store


def outbox_recipients(settings: Settings) -> list[str]:
    """The To: address of every message in the outbox Maildir."""
    path = settings.delivery.section("outbox").path
    if not path.exists():
        return []
    return sorted(str(message["To"]).split("<")[-1].rstrip(">") for message in read_maildir(path))
