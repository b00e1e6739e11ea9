"""The subscribe, unsubscribe and preferences pages in headless Chromium at a phone's width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.issues import load_topics, read_issue
from newsletter.models import SubscriberStatus
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer
from tests.browser import chromium, horizontal_overflow, page_at
from tests.dbkit import db
from tests.webkit import (
    LiveServer,
    archive_samples,
    confirm_path,
    mail_to,
    serving,
    wait_for,
)

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.webfixtures"]  # the live server fixture

PHONE = 375


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def store_of(settings: Settings) -> SubscriberStore:
    return SubscriberStore(open_database(settings.database_url))


def test_subscribe_form_at_phone_width_then_confirm(
    browser: Browser, live: LiveServer, settings: Settings
) -> None:
    with page_at(browser, PHONE) as page:
        page.goto(f"{live.url}/subscribe")
        scroll, client = horizontal_overflow(page)
        assert scroll <= client, f"the form scrolls sideways at {PHONE}px ({scroll} > {client})"
        button = page.get_by_role("button", name="Subscribe")
        box = button.bounding_box()
        assert box is not None and box["height"] >= 44  # a comfortable tap target
        trap = page.locator("#website").bounding_box()
        assert trap is None or trap["x"] + trap["width"] <= 0  # the honeypot is off-screen
        page.fill("#email", "phone.reader@example.com")
        page.fill("#name", "Phone Reader")
        button.click()
        page.wait_for_load_state()
        assert "Check your inbox" in page.content()
        scroll, client = horizontal_overflow(page)
        assert scroll <= client

        confirmation = wait_for(lambda: mail_to(settings, "phone.reader@example.com"))[0]
        page.goto(live.url + confirm_path(confirmation))
        pending = store_of(settings).get("phone.reader@example.com")
        assert pending is not None and pending.status is SubscriberStatus.PENDING
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_load_state()
        assert "You are subscribed" in page.content()
    subscriber = store_of(settings).get("phone.reader@example.com")
    assert subscriber is not None and subscriber.status is SubscriberStatus.ACTIVE
    assert subscriber.name == "Phone Reader"


def test_the_unsubscribe_button_works(
    browser: Browser, live: LiveServer, settings: Settings
) -> None:
    store = store_of(settings)
    reader = store.add("leaving@example.com")
    token = load_signer(settings).sign(Purpose.UNSUBSCRIBE, reader.id)
    with page_at(browser, PHONE) as page:
        page.goto(f"{live.url}/unsubscribe/{token}")
        scroll, client = horizontal_overflow(page)
        assert scroll <= client
        still = store.get_by_id(reader.id)
        assert (
            still is not None and still.status is SubscriberStatus.ACTIVE
        )  # the visit alone did nothing
        page.get_by_role("button", name="Unsubscribe").click()
        page.wait_for_load_state()
        assert "You are unsubscribed" in page.content()
    gone = store.get_by_id(reader.id)
    assert gone is not None and gone.status is SubscriberStatus.UNSUBSCRIBED


def test_preferences_save_in_the_browser(
    browser: Browser, live: LiveServer, settings: Settings
) -> None:
    store = store_of(settings)
    reader = store.add("choosy@example.com", name="Choosy")
    topic = load_topics(settings.topics_file)[4]
    token = load_signer(settings).sign(Purpose.PREFERENCES, reader.id)
    with page_at(browser, PHONE) as page:
        page.goto(f"{live.url}/preferences/{token}")
        scroll, client = horizontal_overflow(page)
        assert scroll <= client, f"the preferences page scrolls sideways ({scroll} > {client})"
        page.get_by_label(topic).check()
        page.get_by_role("button", name="Save preferences").click()
        page.wait_for_load_state()
        assert "Your preferences are saved" in page.content()
        assert page.get_by_label(topic).is_checked()
    saved = store.get_by_id(reader.id)
    assert saved is not None and saved.topics == (topic,)


def test_pages_run_no_script_and_the_csp_forbids_it(browser: Browser, live: LiveServer) -> None:
    with page_at(browser, PHONE) as page:
        answer = page.goto(f"{live.url}/subscribe")
        assert answer is not None
        assert "script-src" not in answer.headers["content-security-policy"]
        assert page.locator("script").count() == 0


@pytest.mark.parametrize("width", [320, PHONE])
def test_archive_pages_fit_a_phone(browser: Browser, settings: Settings, width: int) -> None:
    archive_samples(settings, ("2020-12", "2021-01"))
    with serving(settings) as server, page_at(browser, width) as page:
        for path in (
            "/archive/",
            "/archive/topics/",
            "/archive/topics/attendance-attrition-and-drop-out/",
        ):
            page.goto(server.url + path)
            scroll, client = horizontal_overflow(page)
            assert scroll <= client, f"{path} scrolls sideways at {width}px ({scroll} > {client})"
        page.get_by_role("link", name="Efficacy of Treatments").first.click()
        page.wait_for_load_state()
        assert page.url.endswith("/archive/topics/efficacy-of-treatments/")
        assert "A Second Try" in page.content()


def test_a_sent_issue_web_version_shows_under_the_csp(browser: Browser, settings: Settings) -> None:
    store_of(settings).add("one@example.com")
    issue = read_issue(settings.issues_dir / "2021-01.md", load_topics(settings.topics_file))
    send_issue(settings, db(settings), issue, transport=MemoryTransport())
    with serving(settings) as server, page_at(browser, PHONE) as page:
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text))
        page.goto(f"{server.url}/archive/2021-01/")
        assert issue.articles[0].title in page.inner_text("body")
        scroll, client = horizontal_overflow(page)
        assert scroll <= client, f"the web version scrolls sideways ({scroll} > {client})"
    assert not [text for text in blocked if "Content Security Policy" in text], (
        blocked
    )  # Chromium logs each refusal
