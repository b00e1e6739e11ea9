"""Unsubscribe and preferences pages, in-process (TestClient): GET never changes anything, POST does."""

from __future__ import annotations

import logging
import random
import re

import httpx
import pytest
from starlette.applications import Starlette

from newsletter.config import Settings
from newsletter.issues import load_topics
from newsletter.models import Subscriber, SubscriberStatus, TopicMode
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer
from tests.webkit import csrf_token, in_process

pytest_plugins = ["tests.webfixtures"]  # the app and its in-process client

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def store(settings: Settings) -> SubscriberStore:
    return SubscriberStore(open_database(settings.database_url))


@pytest.fixture
def reader(store: SubscriberStore) -> Subscriber:
    return store.add("reader@example.com", name="Reader")


def token(settings: Settings, purpose: Purpose, subscriber: Subscriber) -> str:
    return load_signer(settings).sign(purpose, subscriber.id)


def status_of(store: SubscriberStore, subscriber: Subscriber) -> SubscriberStatus:
    found = store.get_by_id(subscriber.id)
    assert found is not None
    return found.status


def test_get_shows_one_button_and_changes_nothing(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, reader)}"
    for _ in range(3):  # a mail scanner following the link, then a preview, then the person
        page = client.get(path)
        assert page.status_code == 200
    assert page.text.count("<button") == 1
    assert f'<form method="post" action="{path}">' in page.text
    assert status_of(store, reader) is SubscriberStatus.ACTIVE
    assert [event.kind for event in store.events(reader.id)] == ["subscribed"]
    assert client.head(path).status_code in (200, 405)
    assert status_of(store, reader) is SubscriberStatus.ACTIVE


def test_post_from_the_page_unsubscribes_and_records_an_event(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, reader)}"
    done = client.post(path, data={"confirm": "yes"})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert status_of(store, reader) is SubscriberStatus.UNSUBSCRIBED
    event = store.events(reader.id)[-1]
    assert (event.kind, event.source, event.reason) == ("unsubscribed", "web", "unsubscribe page")
    # Again: the same friendly page, and no second event.
    assert client.post(path, data={"confirm": "yes"}).status_code == 200
    assert len(store.events(reader.id)) == 2
    assert "not on the list" in client.get(path).text


def test_one_click_post_needs_no_cookie_and_no_csrf_token(
    settings: Settings, app: Starlette, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, reader)}"
    with in_process(app) as mail_client:  # no cookie
        answer = mail_client.post(path, content=ONE_CLICK, headers=FORM_TYPE)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert status_of(store, reader) is SubscriberStatus.UNSUBSCRIBED
    assert "one-click" in store.events(reader.id)[-1].reason


def test_one_click_also_works_as_multipart(
    settings: Settings, app: Starlette, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, reader)}"
    with in_process(app) as mail_client:  # no cookie
        answer = mail_client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert status_of(store, reader) is SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_and_wrong_purpose_tokens_change_nothing(
    settings: Settings,
    client: httpx.Client,
    store: SubscriberStore,
    reader: Subscriber,
    method: str,
) -> None:
    real = token(settings, Purpose.UNSUBSCRIBE, reader)
    forged = [
        real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB"),
        token(settings, Purpose.PREFERENCES, reader),
        token(settings, Purpose.CONFIRM, reader),
        "u1.abc.0123456789012345678901",
        "<script>",
    ]
    for candidate in forged:
        answer = client.request(
            method, f"/unsubscribe/{candidate}", content=ONE_CLICK, headers=FORM_TYPE
        )
        assert answer.status_code in (400, 404), candidate
        assert "<script>" not in answer.text
    assert status_of(store, reader) is SubscriberStatus.ACTIVE


def test_a_forgotten_person_gets_the_same_quiet_answer(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/unsubscribe/{token(settings, Purpose.UNSUBSCRIBE, reader)}"
    store.forget("reader@example.com")
    assert client.post(path, content=ONE_CLICK, headers=FORM_TYPE).status_code == 200
    assert "not on the list" in client.get(path).text


# --- preferences ---------------------------------------------------------------------------------


def test_preferences_show_and_save_name_and_topics(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    topics = load_topics(settings.topics_file)
    path = f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}"
    page = client.get(path)
    assert page.status_code == 200
    assert 'value="Reader"' in page.text
    assert page.text.count('type="checkbox"') == len(topics)
    assert "Attendance, Attrition, and Drop-Out" in page.text

    chosen = [topics[0], topics[3]]
    saved = client.post(
        path, data={"csrf_token": csrf_token(page), "name": "  New   Name ", "topics": chosen}
    )
    assert saved.status_code == 200
    assert "Your preferences are saved" in saved.text
    updated = store.get_by_id(reader.id)
    assert updated is not None
    assert updated.name == "New Name"
    assert list(updated.topics) == chosen
    assert updated.status is SubscriberStatus.ACTIVE
    assert store.events(reader.id)[-1].kind == "preferences"
    checked = re.findall(r'name="topics" value="([^"]+)" checked', saved.text)
    assert [html_unescape(value) for value in checked] == chosen
    assert 'name="topic_mode" value="all" checked' in saved.text
    assert updated.topic_mode is TopicMode.ALL

    only = client.post(
        path,
        data={
            "csrf_token": csrf_token(saved),
            "name": "New Name",
            "topics": chosen,
            "topic_mode": "only",
        },
    )
    assert only.status_code == 200 and "Your preferences are saved" in only.text
    assert 'name="topic_mode" value="only" checked' in only.text
    again = store.get_by_id(reader.id)
    assert again is not None and again.topic_mode is TopicMode.ONLY
    assert store.events(reader.id)[-1].reason.endswith("(only)")


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_preferences_refuse_unknown_topics_and_missing_csrf(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}"
    page = client.get(path)
    unknown = client.post(
        path, data={"csrf_token": csrf_token(page), "topics": ["<b>Astrology</b>"]}
    )
    assert unknown.status_code == 400
    assert "unknown topic" in unknown.text
    assert "<b>Astrology</b>" not in unknown.text
    no_csrf = client.post(path, data={"name": "Mallory"})
    assert no_csrf.status_code == 400
    kept = store.get_by_id(reader.id)
    assert kept is not None and kept.name == "Reader" and kept.topics == ()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("<b>Eve</b>\r\nBcc: all@example.com", "contains a line break (carriage return), U+000D"),
        ("Eve\u2028Mallory", "contains a line break (line separator), U+2028"),
        ("x" * 201, "is 201 characters long; at most 200 are allowed"),
    ],
)
def test_preferences_refuse_a_bad_name_on_the_page(
    settings: Settings,
    client: httpx.Client,
    store: SubscriberStore,
    reader: Subscriber,
    name: str,
    problem: str,
) -> None:
    path = f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}"
    page = client.get(path)
    answer = client.post(path, data={"csrf_token": csrf_token(page), "name": name})
    assert answer.status_code == 400
    assert f"Not saved. Please check the name: it {problem}" in answer.text
    assert "<b>Eve</b>" not in answer.text  # what was typed is shown escaped
    kept = store.get_by_id(reader.id)
    assert kept is not None and kept.name == "Reader"
    assert [event.kind for event in store.events(reader.id)] == ["subscribed"]


def test_preferences_keep_a_name_that_looks_like_an_encoded_word(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    path = f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}"
    page = client.get(path)
    saved = client.post(path, data={"csrf_token": csrf_token(page), "name": "=?utf-8?b?DQo=?="})
    assert saved.status_code == 200 and 'value="=?utf-8?b?DQo=?="' in saved.text
    kept = store.get_by_id(reader.id)
    assert kept is not None and kept.name == "=?utf-8?b?DQo=?="


def test_preferences_page_unsubscribe_button_posts_to_the_unsubscribe_link(
    settings: Settings, client: httpx.Client, store: SubscriberStore, reader: Subscriber
) -> None:
    page = client.get(f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}")
    action = re.search(r'<form method="post" action="(/unsubscribe/[^"]+)">', page.text)
    assert action is not None
    assert status_of(store, reader) is SubscriberStatus.ACTIVE
    assert client.post(action.group(1), data={"confirm": "yes"}).status_code == 200
    assert status_of(store, reader) is SubscriberStatus.UNSUBSCRIBED


def test_preferences_with_a_bad_token_are_refused(
    settings: Settings, client: httpx.Client, reader: Subscriber
) -> None:
    bad = token(settings, Purpose.UNSUBSCRIBE, reader)
    assert client.get(f"/preferences/{bad}").status_code == 400
    assert client.post(f"/preferences/{bad}", data={"name": "x"}).status_code == 400


def test_the_access_log_leaves_link_tokens_out(
    settings: Settings,
    client: httpx.Client,
    reader: Subscriber,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.web.access")
    secret = token(settings, Purpose.UNSUBSCRIBE, reader)
    client.get(f"/unsubscribe/{secret}")
    client.post(f"/unsubscribe/{secret}", content=ONE_CLICK, headers=FORM_TYPE)
    client.get(f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "newsletter.web.access"]

    assert len(lines()) == 3  # each line is written once its answer has gone out
    assert any('"GET /unsubscribe/…" 200' in line for line in lines()), lines()
    assert any('"POST /unsubscribe/…" 200' in line for line in lines()), lines()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("newsletter"))
    assert secret not in ours  # (httpx, the test's own client, logs full URLs: not the server's)
    assert reader.email not in ours


def test_garbage_requests_never_cause_a_500(
    settings: Settings, app: Starlette, reader: Subscriber
) -> None:
    rng = random.Random(8058)
    good = token(settings, Purpose.UNSUBSCRIBE, reader)
    paths = [
        "/subscribe",
        f"/unsubscribe/{good}",
        f"/preferences/{token(settings, Purpose.PREFERENCES, reader)}",
        "/confirm/x",
        "/webhooks/sendgrid",
        "/archive/",
        "/archive/topics/%00/",
        "/archive/%E2%82%AC/",
        "/unsubscribe/%FF%FE",
        "/preferences/" + "a" * 5000,
    ]
    content_types = [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/json",
        "text/plain; charset=utf-16",
    ]
    with in_process(app) as http:  # an exception the app lets through fails the test here
        for _ in range(120):
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
            if rng.random() < 0.3:
                body = b"email=%ZZ&name=" + body + b"&csrf_token=1.%FF&topics=%00"
            answer = http.request(
                rng.choice(["GET", "POST", "PUT"]),
                rng.choice(paths),
                content=body,
                headers={"Content-Type": rng.choice(content_types)},
            )
            allowed = answer.status_code < 500 or (  # the unconfigured webhook says so
                answer.status_code == 503 and answer.request.url.path == "/webhooks/sendgrid"
            )
            assert allowed, (
                answer.status_code,
                answer.request.method,
                answer.request.url,
                body[:40],
            )
            assert "Traceback" not in answer.text
    found = SubscriberStore(open_database(settings.database_url)).get_by_id(reader.id)
    assert found is not None
