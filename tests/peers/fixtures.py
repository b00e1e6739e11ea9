"""Fixtures for the test peers (loaded by ``tests/conftest.py``) and a message factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.models import OutgoingMessage, Placeholder, Recipient
from tests.peers.sendgrid_server import SendGridServer
from tests.peers.smtp_server import Certificate, SmtpServer, make_certificate

TEXT = (
    "This month: three studies on the working alliance.\n\n"
    "Unsubscribe: __NL_UNSUBSCRIBE_URL__\nPreferences: __NL_PREFERENCES_URL__\n"
)
HTML = (
    "<html><body><p>This month: three studies on the working alliance.</p>"
    '<p><a href="__NL_UNSUBSCRIBE_URL__">Unsubscribe</a> · '
    '<a href="__NL_PREFERENCES_URL__">Preferences</a></p></body></html>'
)


def make_recipient(index: int, *, domain: str = "example.com") -> Recipient:
    """Recipient number ``index`` with its own links and Message-ID."""
    base = "https://newsletter.example.org"
    return Recipient(
        subscriber_id=index,
        email=f"reader{index}@{domain}",
        name=f"Reader {index}",
        substitutions={
            Placeholder.UNSUBSCRIBE_URL: f"{base}/unsubscribe/tok{index}",
            Placeholder.PREFERENCES_URL: f"{base}/preferences/tok{index}",
        },
        message_id=f"<2026-01.{index}@example.org>",
        list_unsubscribe_url=f"{base}/unsubscribe/tok{index}",
    )


def make_message(
    count: int = 3, *, start: int = 1, html: str | None = HTML, subject: str = "January digest"
) -> OutgoingMessage:
    """An issue-like message to ``count`` recipients (numbered from ``start``)."""
    return OutgoingMessage(
        subject=subject,
        html=html,
        text=TEXT,
        sender_name="PPRNet Monthly",
        sender_email="newsletter@example.org",
        reply_to="editor@example.org",
        recipients=tuple(make_recipient(i) for i in range(start, start + count)),
        issue_month="2026-01",
        list_id="pprnet-monthly.example.org",
    )


@pytest.fixture
def sendgrid_server() -> Iterator[SendGridServer]:
    """A SendGrid v3 stand-in on 127.0.0.1, validating every Mail Send request."""
    with SendGridServer() as server:
        yield server


@pytest.fixture
def sendgrid_settings(sendgrid_server: SendGridServer) -> SendGridSettings:
    """SendGrid settings pointing at the stand-in, with its API key."""
    return SendGridSettings(
        host=sendgrid_server.url, batch_size=1000, sandbox=False, api_key=sendgrid_server.api_key
    )


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost / 127.0.0.1, made once per test session."""
    folder: Path = tmp_path_factory.mktemp("smtp-tls")
    return make_certificate(folder)
