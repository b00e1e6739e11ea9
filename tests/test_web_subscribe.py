"""Subscribing on the web, through the app in-process (Starlette's TestClient).

The whole path: form → confirmation email in the outbox Maildir → confirm → the next issue
arrives → the mail client's one-click unsubscribe. Plus: no address enumeration, honeypot,
rate limit, CSRF, expired links, error pages and security headers. An in-process request returns
after its background task (the confirmation email) has run, so "nothing was sent" is checked at
once. A real uvicorn server is used where the socket matters: X-Forwarded-For, raw request lines,
and `newsletter serve` itself.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.delivery.outbox import OutboxTransport
from newsletter.errors import ConfigError
from newsletter.issues import load_topics, read_issue
from newsletter.models import SubscriberStatus
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer
from newsletter.web.app import create_app
from newsletter.web.security import RateLimit, RateLimiter
from tests.dbkit import db
from tests.peers.sendgrid_server import SendGridServer
from tests.peers.smtp_server import SmtpServer
from tests.webkit import (
    LiveServer,
    confirm,
    confirm_path,
    csrf_token,
    in_process,
    mail_to,
    outbox_messages,
    path_of,
    serving,
    subscribe,
    text_of,
    wait_for,
)

pytest_plugins = ["tests.webfixtures"]  # the app, its in-process client and live server fixtures


def store_of(settings: Settings) -> SubscriberStore:
    return SubscriberStore(open_database(settings.database_url))


def test_subscribe_confirm_receive_and_leave_with_one_click(
    settings: Settings, client: httpx.Client, app: Starlette
) -> None:
    answer = subscribe(client, "reader@example.com", "Rea Der")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text

    [confirmation] = mail_to(settings, "reader@example.com")
    assert "confirm" in str(confirmation["Subject"]).lower()
    assert confirmation.get_body(preferencelist=("html",)) is not None
    assert "works for 7 days" in text_of(confirmation)
    store = store_of(settings)
    record = store.record("reader@example.com")
    assert record is not None
    assert record.subscriber.status is SubscriberStatus.PENDING
    assert (record.source, record.source_ip) == ("web", "127.0.0.1")
    assert record.subscriber.name == "Rea Der"

    before = datetime.now(UTC)
    confirmed = confirm(client, confirm_path(confirmation))
    after = datetime.now(UTC)
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.text
    record = store.record("reader@example.com")
    assert record is not None
    assert record.subscriber.status is SubscriberStatus.ACTIVE
    assert record.confirmed_ip == "127.0.0.1"
    assert record.subscriber.confirmed_at is not None
    assert before <= record.subscriber.confirmed_at <= after

    issue = read_issue(settings.issues_dir / "2021-01.md", load_topics(settings.topics_file))
    summary = send_issue(
        settings,
        db(settings),
        issue,
        transport=OutboxTransport(settings.delivery.section("outbox")),
    )
    assert summary.sent == 1
    delivered = [m for m in mail_to(settings, "reader@example.com") if m["X-Newsletter-Issue"]]
    assert len(delivered) == 1
    assert delivered[0]["Subject"] == issue.subject
    assert delivered[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = str(delivered[0]["List-Unsubscribe"]).strip("<>")

    # The mail client's one-click POST: no cookies, no CSRF token, just the RFC 8058 body.
    with in_process(app) as mail_client:
        left = mail_client.post(
            path_of(unsubscribe_url),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert left.status_code == 200
    subscriber = store.get("reader@example.com")
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.UNSUBSCRIBED
    last = store.events(subscriber.id)[-1]
    assert (last.kind, last.source) == ("unsubscribed", "web")
    assert "one-click" in last.reason


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(
    settings: Settings, client: httpx.Client
) -> None:
    store = store_of(settings)
    store.add("active@example.com")
    gone = store.add("gone@example.com")
    store.unsubscribe(gone.id, reason="test", source="cli")
    store.add("waiting@example.com", status=SubscriberStatus.PENDING)
    store.add("erased@example.com")
    store.forget("erased@example.com")

    addresses = [
        "erased@example.com",
        "new@example.com",
        "active@example.com",
        "ACTIVE@example.com",
        "gone@example.com",
        "waiting@example.com",
        "someone@example.invalid",  # refused by the validator, but plausible
    ]
    answers = [subscribe(client, address) for address in addresses]
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1
    assert len({frozenset(answer.headers.keys()) for answer in answers}) == 1

    # Every background task has run: only the new and the pending (sent again) get a link.
    recipients = sorted(str(m["To"]) for m in outbox_messages(settings))
    assert recipients == ["new@example.com", "waiting@example.com"]
    gone_now = store.get("gone@example.com")
    assert gone_now is not None and gone_now.status is SubscriberStatus.UNSUBSCRIBED
    assert store.get("someone@example.invalid") is None
    assert store.get("erased@example.com") is None  # still forgotten, not re-added
    assert store.is_suppressed("erased@example.com")


def test_an_obvious_typo_gets_the_form_back_with_the_input_escaped(client: httpx.Client) -> None:
    answer = subscribe(client, '"><script>alert(1)</script>', name="<b>Bold</b>")
    assert answer.status_code == 400
    assert "Please enter your email address" in answer.text
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;" in answer.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in answer.text


def test_the_honeypot_answers_the_same_and_does_nothing(
    settings: Settings, client: httpx.Client
) -> None:
    trapped = subscribe(client, "bot@example.com", website="https://spam.example")
    normal = subscribe(client, "human@example.com")
    assert trapped.status_code == normal.status_code == 200
    assert trapped.text == normal.text
    assert len(mail_to(settings, "human@example.com")) == 1
    assert store_of(settings).get("bot@example.com") is None
    assert mail_to(settings, "bot@example.com") == []


def test_too_many_subscribe_posts_from_one_address_get_429(settings: Settings) -> None:
    limit = RateLimit(limit=3, window=60)
    with in_process(create_app(settings, subscribe_limit=limit)) as http:
        answers = [subscribe(http, f"person{n}@example.com") for n in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in refused.text
    assert "Traceback" not in refused.text


def test_forms_without_a_valid_csrf_token_are_refused(
    settings: Settings, client: httpx.Client, app: Starlette
) -> None:
    token = csrf_token(client.get("/subscribe"))
    no_token = client.post("/subscribe", data={"email": "a@example.com"})
    tampered = client.post(
        "/subscribe", data={"email": "b@example.com", "csrf_token": token[:-2] + "xx"}
    )
    with in_process(app) as other_browser:  # the token without its cookie
        no_cookie = other_browser.post(
            "/subscribe", data={"email": "c@example.com", "csrf_token": token}
        )
    for answer in (no_token, tampered, no_cookie):
        assert answer.status_code == 400
        assert "This form expired" in answer.text
        assert csrf_token(answer)  # the form comes back, ready to send again
    store = store_of(settings)
    assert [store.get(f"{x}@example.com") for x in "abc"] == [None, None, None]
    assert outbox_messages(settings) == []


def test_csrf_cookie_is_httponly_and_samesite_strict(client: httpx.Client) -> None:
    cookie = client.get("/subscribe").headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_confirmation_links_that_are_forged_or_expired_are_refused(
    settings: Settings, client: httpx.Client
) -> None:
    store = store_of(settings)
    person = store.add("late@example.com", status=SubscriberStatus.PENDING)
    signer = load_signer(settings)
    old = signer.sign(Purpose.CONFIRM, person.id, now=datetime.now(UTC) - timedelta(days=8))
    wrong_purpose = signer.sign(Purpose.UNSUBSCRIBE, person.id)
    for token in (old, wrong_purpose, "c1.abc.forgedforgedforgedforged", "nonsense"):
        for answer in (client.get(f"/confirm/{token}"), client.post(f"/confirm/{token}")):
            assert answer.status_code == 400
            assert "not valid or has expired" in answer.text
    pending = store.get("late@example.com")
    assert pending is not None and pending.status is SubscriberStatus.PENDING

    fresh = signer.sign(Purpose.CONFIRM, person.id)
    assert "You are subscribed" in confirm(client, f"/confirm/{fresh}").text
    again = client.get(f"/confirm/{fresh}")
    assert again.status_code == 200
    assert "already subscribed" in again.text
    assert "already subscribed" in confirm(client, f"/confirm/{fresh}").text
    assert [e.kind for e in store.events(person.id)].count("confirmed") == 1


def test_a_suppressed_person_cannot_be_confirmed_back(
    settings: Settings, client: httpx.Client
) -> None:
    store = store_of(settings)
    person = store.add("left@example.com", status=SubscriberStatus.PENDING)
    token = load_signer(settings).sign(Purpose.CONFIRM, person.id)
    store.unsubscribe(person.id, reason="changed their mind", source="web")
    assert client.get(f"/confirm/{token}").status_code == 400
    assert confirm(client, f"/confirm/{token}").status_code == 400
    left = store.get("left@example.com")
    assert left is not None and left.status is SubscriberStatus.UNSUBSCRIBED


def test_error_pages_are_styled_and_carry_the_security_headers(client: httpx.Client) -> None:
    missing = client.get("/no/such/page")
    wrong_method = client.delete("/subscribe")
    for answer in (missing, wrong_method):
        assert answer.headers["content-type"].startswith("text/html")
        assert "<main" in answer.text
        assert "Traceback" not in answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert "<script" not in client.get("/subscribe").text


def raw_get(live: LiveServer, path: str, host: str) -> http.client.HTTPResponse:
    """A GET with the path exactly as given (httpx would normalise ``//host/``)."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_no_redirect_goes_anywhere_but_this_site(live: LiveServer) -> None:
    for path in (
        "//evil.example/",
        "//evil.example/archive",
        "/archive//evil.example",
        "/subscribe/",
    ):
        answer = raw_get(live, path, "evil.example")
        assert answer.status == 404, path
        assert answer.getheader("location") is None
    for path, target in (("/archive", "/archive/"), ("/", "/subscribe")):
        moved = raw_get(live, path, "evil.example")
        assert moved.status in (302, 308)
        assert moved.getheader("location") == target


def test_an_oversized_form_is_refused_with_413(client: httpx.Client) -> None:
    token = csrf_token(client.get("/subscribe"))
    answer = client.post(
        "/subscribe", data={"email": "x@example.com", "name": "n" * 100_000, "csrf_token": token}
    )
    assert answer.status_code == 413
    assert "Traceback" not in answer.text


def test_an_unexpected_failure_is_a_plain_500_page(settings: Settings, app: Starlette) -> None:
    person = store_of(settings).add("someone@example.com")
    token = load_signer(settings).sign(Purpose.PREFERENCES, person.id)
    database = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:  # the database breaks under the running app
        conn.execute("ALTER TABLE subscribers RENAME TO gone")
    with in_process(app, raise_server_exceptions=False) as http:  # as a visitor sees it
        answer = http.get(f"/preferences/{token}")
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text
    assert "Traceback" not in answer.text and "sqlite" not in answer.text.lower()
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_confirmation_email_goes_through_the_configured_transport(settings: Settings) -> None:
    transport = MemoryTransport()
    transport.refuse["refused@example.com"] = "550 no such user"
    with in_process(create_app(settings, transport=lambda: transport)) as http:
        subscribe(http, "memo@example.com", "Claim your <b>prize</b> at https://evil.example/win")
        refused = subscribe(http, "refused@example.com")
    assert len(transport.batches) == 2
    assert refused.status_code == 200  # a refused email changes nothing the visitor sees
    message, recipient = transport.delivered[0]
    assert recipient.email == "memo@example.com"
    assert recipient.subscriber_id is None
    assert recipient.name is None  # no display name in To
    for shown in (message.html or "", message.text or "", message.subject):
        assert "prize" not in shown and "evil.example" not in shown  # nothing typed but the address
    stored = store_of(settings).get("memo@example.com")
    assert stored is not None and stored.name is not None and "prize" in stored.name
    assert re.search(r"https://newsletter.example.org/confirm/C\w+\.", message.text)
    assert transport.opened == transport.closed == 2


@pytest.mark.parametrize("field", ["email", "name"])
def test_line_breaks_in_fields_never_reach_a_header(
    settings: Settings, client: httpx.Client, field: str
) -> None:
    values = {"email": "crlf@example.com", "name": "Eve"}
    values[field] = values[field] + "\r\nBcc: victim@example.com"
    answer = subscribe(client, values["email"], values["name"])
    assert answer.status_code == 400  # both refused on the form, before anything is stored
    if field == "name":
        assert "Please check the name: it contains a line break" in answer.text
    assert outbox_messages(settings) == []
    assert store_of(settings).get("crlf@example.com") is None


def test_a_name_over_200_characters_is_refused_on_the_form(
    settings: Settings, client: httpx.Client
) -> None:
    answer = subscribe(client, "long@example.com", "<i>" + "x" * 200)
    assert answer.status_code == 400
    assert (
        "Please check the name: it is 203 characters long; at most 200 are allowed" in answer.text
    )
    assert "<i>" not in answer.text
    assert outbox_messages(settings) == []
    assert store_of(settings).get("long@example.com") is None


def test_a_name_like_an_encoded_word_is_kept_literally_and_never_mailed(
    settings: Settings, client: httpx.Client
) -> None:
    answer = subscribe(client, "literal@example.com", "=?utf-8?b?DQo=?=")
    assert answer.status_code == 200
    [confirmation] = mail_to(settings, "literal@example.com")
    [to] = confirmation["To"].addresses  # the confirmation shows nothing the requester typed
    assert (to.display_name, to.addr_spec) == ("", "literal@example.com")
    stored = store_of(settings).get("literal@example.com")
    assert stored is not None and stored.name == "=?utf-8?b?DQo=?="


def test_behind_a_proxy_the_forwarded_address_is_recorded_and_rate_limited(
    settings: Settings,
) -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 only (the proxy), as `newsletter serve` does.
    limit = RateLimit(limit=2, window=60)
    with (
        serving(settings, subscribe_limit=limit) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        form = http.get("/subscribe")
        data = {"email": "proxied@example.com", "csrf_token": csrf_token(form)}
        assert http.post("/subscribe", data=data, headers=forwarded).status_code == 200
        assert http.post("/subscribe", data=data, headers=forwarded).status_code == 200
        assert http.post("/subscribe", data=data, headers=forwarded).status_code == 429
        other = {"X-Forwarded-For": "198.51.100.9"}
        assert http.post("/subscribe", data=data, headers=other).status_code == 200
        wait_for(lambda: store_of(settings).record("proxied@example.com"))
    record = store_of(settings).record("proxied@example.com")
    assert record is not None and record.source_ip == "203.0.113.7"


def test_the_rate_limiter_forgets_old_addresses_to_stay_bounded() -> None:
    limiter = RateLimiter(RateLimit(limit=2, window=60), max_clients=100)
    for number in range(5000):
        assert limiter.hit(f"10.0.{number // 256}.{number % 256}", now=float(number)) is None
    assert len(limiter) == 100
    assert limiter.hit("a", now=0.0) is None
    assert limiter.hit("a", now=1.0) is None
    assert limiter.hit("a", now=2.0) == pytest.approx(58.0)
    assert limiter.hit("a", now=61.0) is None  # the first hit left the window


def test_serve_command_answers_and_stops(project: Path, clean_env: None) -> None:
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "k" * 32}
    command = [sys.executable, "-m", "newsletter", "--project", str(project)]
    process = subprocess.Popen(
        [*command, "serve", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        port = None
        while port is None:
            seen.append(lines.get(timeout=20))  # bounded: queue.Empty fails the test
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", seen[-1])
            port = int(found.group(1)) if found else None
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        reader.join(timeout=5)
    assert process.returncode == 0
    assert process.stdout is not None
    out = process.stdout.read()
    assert "serving https://newsletter.example.org" in out
    while not lines.empty():
        seen.append(lines.get())
    assert "NEWSLETTER_SENDGRID_WEBHOOK_KEY is not set" in "".join(seen)


def test_serve_refuses_a_bad_webhook_key_before_listening(project: Path, clean_env: None) -> None:
    env = {**os.environ, "NEWSLETTER_SENDGRID_WEBHOOK_KEY": "not-a-key"}
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(project), "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "NEWSLETTER_SENDGRID_WEBHOOK_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_or_broken_templates_stop_the_start_with_a_located_error(
    settings: Settings,
) -> None:
    broken = settings.templates_dir / "web" / "subscribe.html.j2"
    broken.write_text("{% block content %}never closed")
    with pytest.raises(ConfigError, match=r"subscribe\.html\.j2:1"):
        create_app(settings)
    broken.unlink()
    with pytest.raises(ConfigError, match=r"subscribe\.html\.j2: not found"):
        create_app(settings)


def test_absurd_csrf_values_are_a_400_not_a_crash(client: httpx.Client) -> None:
    client.get("/subscribe")
    for value in ("9" * 5000 + ".abc", ".", "1." + "a" * 5000, "é.é"):
        answer = client.post("/subscribe", data={"email": "x@example.com", "csrf_token": value})
        assert answer.status_code == 400, value[:20]


def test_with_smtp_configured_the_confirmation_goes_over_smtp(settings: Settings) -> None:
    with SmtpServer() as smtp:
        section = dataclasses.replace(
            settings.delivery.section("smtp"),
            host="127.0.0.1",
            port=smtp.port,
            security="none",
            username=None,
        )
        delivery = dataclasses.replace(
            settings.delivery.with_section("smtp", section), transport="smtp"
        )
        over_smtp = dataclasses.replace(settings, delivery=delivery)
        with in_process(create_app(over_smtp)) as http:
            assert subscribe(http, "smtp.reader@example.com", "Sam").status_code == 200
            [received] = smtp.messages
            assert received.rcpt_tos == ["smtp.reader@example.com"]
            assert received.mail_from == settings.sender.email
            confirmed = confirm(http, confirm_path(received.message))
            assert "You are subscribed" in confirmed.text
    assert outbox_messages(settings) == []
    found = store_of(settings).get("smtp.reader@example.com")
    assert found is not None and found.status is SubscriberStatus.ACTIVE


def test_with_sendgrid_configured_the_confirmation_is_a_valid_mail_send(
    settings: Settings,
) -> None:
    with SendGridServer() as sendgrid:
        section = dataclasses.replace(
            settings.delivery.section("sendgrid"), host=sendgrid.url, api_key=sendgrid.api_key
        )
        delivery = dataclasses.replace(
            settings.delivery.with_section("sendgrid", section), transport="sendgrid"
        )
        over_api = dataclasses.replace(settings, delivery=delivery)
        with in_process(create_app(over_api)) as http:
            assert subscribe(http, "api.reader@example.com").status_code == 200
    assert sendgrid.rejected == []  # the stand-in checks SendGrid's JSON Schema and limits
    assert sendgrid.recipients() == ["api.reader@example.com"]
    body = sendgrid.accepted[0]
    plain = next(part["value"] for part in body["content"] if part["type"] == "text/plain")
    assert "/confirm/C" in plain
    assert outbox_messages(settings) == []
