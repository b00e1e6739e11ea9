"""The preview page in headless Chromium: a save reaches it without a reload, in every tab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from newsletter.config import Settings
from newsletter.web.preview import PreviewServer
from tests.browser import chromium, page_at
from tests.test_preview import save, source_for

pytestmark = pytest.mark.browser

DEADLINE_MS = 10_000  # a deadline for a loaded machine, not a speed check (see bench/)

# True when both frames (desktop and phone) show `text` in their document.
FRAMES_SHOW = """(text) => {
  const frames = Array.from(document.querySelectorAll("iframe.email"));
  return frames.length === 2 && frames.every((frame) => {
    const doc = frame.contentDocument;
    return doc !== null && doc.body !== null && doc.body.innerText.includes(text);
  });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def issue_path(settings: Settings) -> Path:
    return settings.issues_dir / "2021-01.md"


@pytest.fixture
def server(settings: Settings, issue_path: Path) -> Iterator[PreviewServer]:
    with PreviewServer(source_for(settings, issue_path), port=0) as running:
        yield running


def open_preview(page: Page, url: str) -> None:
    """Load the page, wait until it is live and both frames show the email, then mark it."""
    page.goto(url)
    page.wait_for_function("() => document.getElementById('live').textContent.startsWith('Live')")
    page.wait_for_function(FRAMES_SHOW, arg="Burnout Among", timeout=DEADLINE_MS)
    page.evaluate("() => { window.notReloaded = 'still the same document'; }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.notReloaded") == "still the same document"


def test_a_save_reaches_both_frames_and_the_panel_without_a_reload(
    browser: Browser, server: PreviewServer, issue_path: Path
) -> None:
    with page_at(browser, 1600) as page:
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text))  # CSP violations land here
        open_preview(page, server.url)
        good = issue_path.read_text(encoding="utf-8")
        save(issue_path, good.replace("Burnout Among", "Exhaustion Among"))
        page.wait_for_function(FRAMES_SHOW, arg="Exhaustion Among", timeout=DEADLINE_MS)
        page.wait_for_function(
            "() => document.getElementById('text').textContent.includes('Exhaustion Among')"
        )
        assert_not_reloaded(page)
        assert page.locator("#summary").text_content() == "0 errors, 0 warnings"

        save(issue_path, good.replace("Topics: Therapist Factors;", "Topics: Nope;"))
        page.wait_for_function(
            "() => document.getElementById('summary').textContent.startsWith('2 errors')",
            timeout=DEADLINE_MS,
        )
        assert "[unknown-topic]" in (page.locator(".findings").text_content() or "")
        assert (page.locator("#subject").text_content() or "").startswith("Therapist well-being")
        assert page.locator("#status").text_content() == "ready"
        page.wait_for_function(FRAMES_SHOW, arg="no email to show", timeout=DEADLINE_MS)

        save(issue_path, good.replace("status: ready", "status: draft"))
        page.wait_for_function(
            "() => document.getElementById('status').textContent === 'draft'", timeout=DEADLINE_MS
        )
        page.wait_for_function(FRAMES_SHOW, arg="Burnout Among", timeout=DEADLINE_MS)
        assert_not_reloaded(page)
        assert not [text for text in errors if "Content Security Policy" in text], errors


def test_every_open_tab_follows_the_saves(
    browser: Browser, server: PreviewServer, issue_path: Path
) -> None:
    with page_at(browser, 1280) as first, page_at(browser, 800) as second:
        open_preview(first, server.url)
        open_preview(second, server.url + "?variant=2*,1")
        good = issue_path.read_text(encoding="utf-8")
        save(issue_path, good.replace("Mentalizing as a Buffer", "Mentalizing as a Shield"))
        for page in (first, second):
            page.wait_for_function(FRAMES_SHOW, arg="as a Shield", timeout=DEADLINE_MS)
            assert_not_reloaded(page)
        assert (second.locator("#variant").text_content() or "").startswith("Variant: 2*,1")


def test_the_page_reconnects_to_a_restarted_server(
    browser: Browser, settings: Settings, issue_path: Path
) -> None:
    """EventSource reconnects by itself; the new server's version tells the page to catch up."""
    first = PreviewServer(source_for(settings, issue_path), port=0).start()
    port = int(first.url.rsplit(":", 1)[1].rstrip("/"))
    with page_at(browser, 1280) as page:
        open_preview(page, first.url)
        first.close()
        page.wait_for_function(
            "() => document.getElementById('live').textContent.includes('not answering')",
            timeout=DEADLINE_MS,
        )
        good = issue_path.read_text(encoding="utf-8")
        save(issue_path, good.replace("Burnout Among", "Saved While Down Among"))
        with PreviewServer(source_for(settings, issue_path), port=port):
            page.wait_for_function(FRAMES_SHOW, arg="Saved While Down", timeout=DEADLINE_MS)
            save(issue_path, good.replace("Burnout Among", "Saved After Among"))
            page.wait_for_function(FRAMES_SHOW, arg="Saved After Among", timeout=DEADLINE_MS)
            assert_not_reloaded(page)


def test_picking_a_variant_shows_its_email(browser: Browser, server: PreviewServer) -> None:
    with page_at(browser, 1600) as page:
        open_preview(page, server.url)
        page.select_option("#variant-list", "2*,1")  # submits the form by itself
        page.wait_for_url("**/?variant=2*%2C1")
        order = """() => {
          const text = document.querySelector("iframe.email").contentDocument.body.innerText;
          return text.indexOf("Mentalizing as a Buffer") < text.indexOf("Burnout Among");
        }"""
        page.wait_for_function(order, timeout=DEADLINE_MS)
        assert (page.locator("#variant").text_content() or "").startswith("Variant: 2*,1")
