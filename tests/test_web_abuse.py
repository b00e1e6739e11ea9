"""The subscribe form cannot be turned against strangers; links opened by scanners change nothing.

Requests go to the app in-process (Starlette's TestClient), each from the client address the test
gives, as uvicorn would set it (uvicorn's own X-Forwarded-For handling is tested in
test_web_subscribe.py). A request returns after its background task has run, so the refused ones
are counted at once, without waiting for something that does not happen.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from email.message import EmailMessage

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.models import SubscriberStatus
from newsletter.store.confirmations import (
    CONFIRMATION_SENT,
    CONFIRMATIONS_PER_DAY,
    claim_confirmation,
)
from newsletter.store.engine import open_database
from newsletter.store.schema import subscriber_events
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer
from newsletter.web.app import create_app
from newsletter.web.security import RateLimit, RedactTokens, rate_key
from tests.webkit import (
    confirm,
    confirm_path,
    csrf_token,
    in_process,
    mail_to,
    outbox_messages,
    subscribe,
    text_of,
)

pytest_plugins = ["tests.webfixtures"]  # the app and its in-process client

VICTIM = "victim@example.com"
BAIT = "Claim your prize at https://evil.example/win"


def store_of(settings: Settings) -> SubscriberStore:
    return SubscriberStore(open_database(settings.database_url))


def post_from(app: Starlette, ip: str, email: str, name: str = "") -> httpx.Response:
    """One visitor at ``ip``: load the form (cookie + token), submit it."""
    with in_process(app, client=(ip, 50000)) as http:
        form = http.get("/subscribe")
        data = {"email": email, "name": name, "csrf_token": csrf_token(form)}
        return http.post("/subscribe", data=data)


def confirmations_recorded(settings: Settings) -> int:
    with open_database(settings.database_url).connect() as conn:
        count = conn.scalar(
            sa.select(sa.func.count())
            .select_from(subscriber_events)
            .where(subscriber_events.c.kind == CONFIRMATION_SENT)
        )
    return int(count or 0)


def test_ten_posts_from_ten_addresses_send_three_emails_and_answer_alike(
    settings: Settings, app: Starlette
) -> None:
    answers = [post_from(app, f"198.51.100.{n}", VICTIM, BAIT) for n in range(10)]
    assert len(mail_to(settings, VICTIM)) == CONFIRMATIONS_PER_DAY == 3
    assert confirmations_recorded(settings) == 3
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1
    assert len({frozenset(answer.headers.keys()) for answer in answers}) == 1


def test_two_servers_on_one_database_still_send_three(settings: Settings) -> None:
    one, two = create_app(settings), create_app(settings)  # two apps, each with its own engine
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda n=n: results.append(
                post_from((one, two)[n % 2], f"203.0.113.{n}", VICTIM)
            )
        )
        for n in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [answer.status_code for answer in results] == [200] * 12
    assert len(mail_to(settings, VICTIM)) == 3
    assert confirmations_recorded(settings) == 3


def test_the_confirmation_email_shows_nothing_the_requester_typed(
    settings: Settings, app: Starlette
) -> None:
    post_from(app, "192.0.2.1", VICTIM, BAIT)
    message: EmailMessage
    [message] = mail_to(settings, VICTIM)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    shown = "\n".join([text_of(message), str(html.get_content()), str(message["To"])])
    for fragment in ("prize", "evil.example", "Claim"):
        assert fragment not in shown
    assert message["To"].addresses[0].display_name == ""


def test_thirty_posts_from_one_ipv6_64_meet_the_limit(settings: Settings) -> None:
    server = create_app(settings, subscribe_limit=RateLimit(limit=10, window=600))
    answers = [
        post_from(server, f"2001:db8:1:2:{n:x}::{n + 1:x}", f"six{n}@example.com")
        for n in range(30)
    ]
    elsewhere = post_from(server, "2001:db8:1:3::1", "other@example.com")  # the next /64
    codes = [answer.status_code for answer in answers]
    assert codes[:10] == [200] * 10
    assert set(codes[10:]) == {429}
    assert elsewhere.status_code == 200


def test_ipv4_stays_per_address_and_mapped_ipv6_counts_as_its_ipv4(settings: Settings) -> None:
    server = create_app(settings, subscribe_limit=RateLimit(limit=2, window=600))
    first = [post_from(server, "192.0.2.10", f"a{n}@example.com").status_code for n in range(2)]
    mapped = post_from(server, "::ffff:192.0.2.10", "a2@example.com").status_code
    neighbour = post_from(server, "192.0.2.11", "b@example.com").status_code
    other_mapped = post_from(server, "::ffff:192.0.2.12", "c@example.com").status_code
    assert (first, mapped, neighbour, other_mapped) == ([200, 200], 429, 200, 200)


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:aa:bb:1:2:3:4", "2001:db8:aa:bb::/64"),
        ("2001:db8:aa:bb::ffff", "2001:db8:aa:bb::/64"),
        ("[2001:db8::1]", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
    ],
)
def test_rate_keys(ip: str, key: str) -> None:
    assert rate_key(ip) == key


def test_opening_the_link_confirms_nothing_only_the_button_does(
    settings: Settings, client: httpx.Client, app: Starlette
) -> None:
    subscribe(client, "careful@example.com")
    [confirmation] = mail_to(settings, "careful@example.com")
    path = confirm_path(confirmation)
    store = store_of(settings)

    def status() -> SubscriberStatus:
        found = store.get("careful@example.com")
        assert found is not None
        return found.status

    with in_process(app, follow_redirects=True) as scanner:  # follows links
        page = scanner.get(path)
        head = scanner.head(path)
    with in_process(app) as other:  # the form's token, no cookie
        forged = other.post(path, data={"csrf_token": csrf_token(page)})
    assert page.status_code == head.status_code == 200
    assert '<form method="post" action="/confirm/' in page.text
    assert "<script" not in page.text
    assert forged.status_code == 400 and "This form expired" in forged.text
    assert status() is SubscriberStatus.PENDING

    done = confirm(client, path)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert status() is SubscriberStatus.ACTIVE


def test_an_expired_link_shows_no_button(settings: Settings, client: httpx.Client) -> None:
    from datetime import UTC, datetime, timedelta

    person = store_of(settings).add("slow@example.com", status=SubscriberStatus.PENDING)
    old = load_signer(settings).sign(
        Purpose.CONFIRM, person.id, now=datetime.now(UTC) - timedelta(days=8)
    )
    page = client.get(f"/confirm/{old}")
    assert page.status_code == 400 and "csrf_token" not in page.text
    fresh_form = csrf_token(client.get("/subscribe"))  # a valid cookie and token, wrong link
    assert client.post(f"/confirm/{old}", data={"csrf_token": fresh_form}).status_code == 400


def test_logs_show_no_token_and_no_typed_address(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = MemoryTransport()
    transport.refuse["bounced@example.com"] = "550 5.1.1 <Bounced@Example.com>: no such user"
    person = store_of(settings).add("reader@example.com")
    preferences = load_signer(settings).sign(Purpose.PREFERENCES, person.id)
    server = create_app(settings, transport=lambda: transport, form_limit=RateLimit(1, 600))
    post_from(server, "192.0.2.7", "nobody@example.invalid")  # refused by the validator
    post_from(server, "192.0.2.8", "bounced@example.com")  # refused by the mail server
    assert any("[address]" in r.getMessage() for r in caplog.records)
    with in_process(server, raise_server_exceptions=False) as http:
        assert http.post(f"/preferences/{preferences}").status_code == 400  # no CSRF
        assert http.post(f"/preferences/{preferences}").status_code == 429
        database = settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as conn:
            conn.execute("ALTER TABLE subscribers RENAME TO gone")
        assert http.get(f"/preferences/{preferences}").status_code == 500
    assert any("failed" in r.getMessage() for r in caplog.records)
    ours = "\n".join(
        r.getMessage() + (r.exc_text or "")
        for r in caplog.records
        if r.name.startswith("newsletter")
    )
    assert "rate limit" in ours and "/preferences/…" in ours
    assert "refused" in ours and "[address]" in ours
    assert preferences not in ours
    assert "nobody@example.invalid" not in ours
    assert "bounced@example.com" not in ours.lower()


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactTokens())
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("GET %s", "/confirm/c1.secret.token?x=1")
        logger.warning("see https://site.example/unsubscribe/u1.secret/tail and /archive/2021-01/")
        try:
            raise RuntimeError("bad /preferences/p1.secret")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert "secret" not in text
    assert "/confirm/…?x=1" in text and "/unsubscribe/…/tail" in text
    assert "/archive/2021-01/" in text and "RuntimeError: bad /preferences/…" in text


def test_the_500_page_carries_hsts_over_https(settings: Settings, app: Starlette) -> None:
    person = store_of(settings).add("someone@example.com")
    token = load_signer(settings).sign(Purpose.PREFERENCES, person.id)
    database = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE subscribers RENAME TO gone")
    # The scheme uvicorn sets from the proxy's X-Forwarded-Proto: https.
    with in_process(app, base_url="https://testserver", raise_server_exceptions=False) as http:
        answer = http.get(f"/preferences/{token}")
    assert answer.status_code == 500
    assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert answer.headers["content-security-policy"]
    assert outbox_messages(settings) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_claims_from_two_processes_stop_at_three(
    settings: Settings, backend: str, request: pytest.FixtureRequest
) -> None:
    url = (
        settings.database_url
        if backend == "sqlite"
        else request.getfixturevalue("postgres_server").new_database()  # tests/peers/postgres.py
    )
    engines = [open_database(url), open_database(url)]  # as two `serve` processes would
    person = SubscriberStore(engines[0]).add(
        f"race.{backend}@example.com", status=SubscriberStatus.PENDING
    )
    start = threading.Barrier(16)
    outcomes: list[bool | Exception] = []

    def claim(engine: sa.Engine) -> None:
        start.wait(timeout=10)
        try:
            outcomes.append(claim_confirmation(engine, person.id))
        except Exception as err:  # a lost race must be a refusal, never an error
            outcomes.append(err)

    threads = [threading.Thread(target=claim, args=(engines[n % 2],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count(True) == 3, outcomes
    assert outcomes.count(False) == 13, outcomes
