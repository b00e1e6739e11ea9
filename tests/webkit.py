"""Helpers for the public web app's tests: the app in-process or behind uvicorn, forms, the outbox.

Most tests talk to the app through Starlette's ``TestClient`` (``in_process``): each request runs
in this process, and the response comes back only after the app's background tasks (the
confirmation email) have run, so "nothing was sent" can be asserted at once. ``serving`` puts the
app behind a real uvicorn server for the few tests that need a socket (uvicorn's X-Forwarded-*
handling, raw request lines, the browser).
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from newsletter.config import Settings
from newsletter.web.app import create_app

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIRM_RE = re.compile(r"https?://[^\s\"<>]+/confirm/([A-Za-z0-9_.-]+)")

LOOPBACK = ("127.0.0.1", 50000)  # the client address an in-process request comes from


class LiveServer:
    """uvicorn serving an ASGI app in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test web server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serving(settings: Settings, **options: Any) -> Iterator[LiveServer]:
    """``create_app(settings, **options)`` behind a live server for the duration of the block."""
    server = LiveServer(create_app(settings, **options))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def in_process(
    app: Starlette,
    *,
    client: tuple[str, int] = LOOPBACK,
    base_url: str = "http://testserver",
    raise_server_exceptions: bool = True,
    follow_redirects: bool = False,
) -> Iterator[TestClient]:
    """A browser-like client calling ``app`` in this process: keeps cookies, follows no redirect
    (unless ``follow_redirects``).

    ``client`` is the caller's address as the app sees it (what uvicorn would put in the scope).
    An exception the app does not handle is raised in the test unless
    ``raise_server_exceptions=False`` (to see the 500 page a visitor would get).
    """
    with TestClient(
        app,
        base_url=base_url,
        client=client,
        follow_redirects=follow_redirects,
        raise_server_exceptions=raise_server_exceptions,
    ) as http:
        yield http


def csrf_token(page: httpx.Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def subscribe(
    http: httpx.Client, email_address: str, name: str = "", **extra: str
) -> httpx.Response:
    """Load the form (cookie + token), then submit it."""
    form = http.get("/subscribe")
    assert form.status_code == 200
    data = {"email": email_address, "name": name, "csrf_token": csrf_token(form), **extra}
    return http.post("/subscribe", data=data)


def outbox_messages(settings: Settings) -> list[EmailMessage]:
    folder = settings.delivery.section("outbox").path / "new"
    if not folder.is_dir():
        return []
    messages = []
    for path in sorted(folder.iterdir()):
        with path.open("rb") as handle:
            parsed = email.message_from_binary_file(handle, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``condition()`` is truthy, or fail after ``timeout`` seconds.

    Only for a real server or another process, whose background work ends after the response;
    in-process requests (``in_process``) have finished everything when they return.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def mail_to(settings: Settings, address: str) -> list[EmailMessage]:
    return [m for m in outbox_messages(settings) if address in str(m["To"])]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def confirm_path(message: EmailMessage) -> str:
    match = CONFIRM_RE.search(text_of(message))
    assert match, "no confirmation link in the email"
    return f"/confirm/{match.group(1)}"


def confirm(http: httpx.Client, path: str) -> httpx.Response:
    """Open a confirmation link (the page with the button), then press the button."""
    page = http.get(path)
    if page.status_code != 200 or 'name="csrf_token"' not in page.text:
        return page  # an invalid link, or already subscribed: nothing to press
    return http.post(path, data={"csrf_token": csrf_token(page)})


def path_of(url: str) -> str:
    """The path of an absolute link (the app's links use links.base_url, not the test server)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def archive_fixture(root: Path, month: str, source: str, *, subject: str, finished_at: str) -> Path:
    """An ``archive/MONTH/`` folder as a completed send leaves it."""
    import json

    folder = root / "archive" / month
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.md").write_text(source, encoding="utf-8")
    (folder / "index.html").write_text(
        f"<!doctype html><html><head><title>{subject}</title></head>"
        f"<body><h1>web version {month}</h1></body></html>",
        encoding="utf-8",
    )
    (folder / "email.txt").write_text(f"text version {month}\n", encoding="utf-8")
    record = {
        "issue": month,
        "subject": subject,
        "started_at": finished_at,
        "finished_at": finished_at,
        "transport": "outbox",
        "counts": {"sent": 3},
    }
    (folder / "send.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


SAMPLE_MONTHS = ("2020-11", "2020-12", "2021-01")


def archive_samples(
    settings: Settings, months: tuple[str, ...] = SAMPLE_MONTHS, sent: dict[str, str] | None = None
) -> Settings:
    """The sample issues of ``months`` archived as sent (on the 5th, or on ``sent[month]``)."""
    from newsletter.issues import load_topics, read_issue

    topics = load_topics(settings.topics_file)
    for month in months:
        issue = read_issue(settings.issues_dir / f"{month}.md", topics)
        finished_at = (sent or {}).get(month, f"{month}-05T14:00:00+00:00")
        archive_fixture(
            settings.root, month, issue.source, subject=issue.subject, finished_at=finished_at
        )
    return settings
