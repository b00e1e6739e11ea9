"""The archive as a website in headless Chromium: issue pages at a phone's and a desktop's width,
article anchors, topic pages linking to them, and search (served, and static under the CSP).

Set ``ARCHIVE_SCREENSHOTS=DIR`` to keep a screenshot of each page looked at.
"""

from __future__ import annotations

import dataclasses
import http.server
import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from newsletter.config import Settings
from newsletter.doi.record import CORRECTION, Update
from newsletter.doi.store import MetadataStore
from newsletter.web.archive import ARCHIVE_CSP, export_static
from tests.browser import chromium, horizontal_overflow, page_at
from tests.webkit import archive_fixture, archive_samples, serving

pytestmark = pytest.mark.browser

MONTHS = ("2020-11", "2020-12", "2021-01")
SUMMARY_WORD = "videoconferenced"  # only in the summary of 2020-11's first article
FIRST_TITLE = "Building the Alliance Through a Screen"

# Every text element's font size and contrast against the background it sits on (WCAG 2.x).
READABILITY_JS = """() => {
  const channel = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const rgba = text => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = el => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgba(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const problems = [];
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width <= 1 || box.height <= 1) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize);
    const [fg, bg] = [luminance(rgba(style.color)), luminance(background(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const what = el.tagName + "." + el.className + ": " + el.textContent.trim().slice(0, 30);
    if (size < 14) problems.push(what + " is " + size + "px");
    if (ratio < 4.5) problems.push(what + " has contrast " + ratio.toFixed(2));
  }
  return problems;
}"""

HEADINGS_JS = """() => [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
  .map(h => Number(h.tagName[1]))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def archived(settings: Settings) -> Settings:
    return archive_samples(settings, MONTHS)


@contextmanager
def console_of(page: Page) -> Iterator[list[str]]:
    """Every console message of ``page`` (Chromium logs each CSP refusal there)."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
    yield messages


def csp_violations(messages: list[str]) -> list[str]:
    return [text for text in messages if "Content Security Policy" in text or "page error" in text]


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("ARCHIVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def in_viewport(page: Page, selector: str) -> bool:
    top = page.evaluate(f"() => document.querySelector({selector!r}).getBoundingClientRect().top")
    return 0 <= float(top) < 100


@pytest.mark.parametrize("width", [375, 800])
def test_an_issue_page_fits_reads_well_and_its_anchors_work(
    browser: Browser, archived: Settings, width: int
) -> None:
    record = MetadataStore(archived.issues_dir / ".metadata").get("10.1037/pst0000165")
    assert record is not None  # a free copy and a correction found after sending: all shown
    notice = Update(CORRECTION, "10.1037/pst0000999", "2021-02-09")
    record = dataclasses.replace(record, free_url="https://example.org/free.pdf", updates=(notice,))
    MetadataStore(archived.archive_dir / "2020-11" / "records").put(record)
    with serving(archived) as server, page_at(browser, width) as page, console_of(page) as console:
        page.goto(f"{server.url}/archive/2020-11/")
        screenshot(page, f"issue-2020-11-{width}")
        assert page.locator(".notice.late").count() == 1 and page.locator("a.free").count() == 1
        scroll, client = horizontal_overflow(page)
        assert scroll <= client, (
            f"the issue page scrolls sideways at {width}px ({scroll} > {client})"
        )
        assert page.evaluate(READABILITY_JS) == []
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(READABILITY_JS) == []
        page.emulate_media(color_scheme="light")
        levels = page.evaluate(HEADINGS_JS)
        assert levels[0] == 1 and levels.count(1) == 1
        assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
        text = page.inner_text("body")
        for email_only in ("Unsubscribe", "View this issue in your browser", "You are receiving"):
            assert email_only not in text
        page.get_by_role("navigation", name="In this issue").get_by_role("link").nth(1).click()
        assert page.url.endswith("/archive/2020-11/#article-2")
        assert in_viewport(page, "#article-2")
        assert page.evaluate("() => document.querySelector(':target').id") == "article-2"
        column = page.evaluate("() => document.querySelector('#article-1 p').clientWidth")
        characters = page.evaluate(
            "() => { const s = document.createElement('span'); s.textContent = '0'.repeat(70);"
            " document.querySelector('#article-1').append(s); const w = s.offsetWidth;"
            " s.remove(); return w; }"
        )
        assert column <= characters + 1  # the text column is at most ~70 characters wide
        page.add_style_tag(content=".meta { font-size: 12px; color: #aaa; }")
        problems = page.evaluate(READABILITY_JS)  # the check itself can fail
        assert any("12px" in p for p in problems) and any("contrast" in p for p in problems)
    assert csp_violations(console) == []


def test_a_topic_page_links_to_the_article_in_its_issue(
    browser: Browser, archived: Settings
) -> None:
    with serving(archived) as server, page_at(browser, 375) as page:
        page.goto(f"{server.url}/archive/topics/therapist-factors/")
        screenshot(page, "topic-therapist-factors-375")
        scroll, client = horizontal_overflow(page)
        assert scroll <= client
        assert page.locator(".implications h3").first.inner_text() == "Practice Implications"
        page.get_by_role("link", name=FIRST_TITLE).click()
        page.wait_for_load_state()
        assert page.url.endswith("/archive/2020-11/#article-1")
        target = page.locator(":target h2")
        assert target.inner_text() == FIRST_TITLE
        assert in_viewport(page, "#article-1")


def test_the_served_search_finds_an_article_by_a_word_of_its_summary(
    browser: Browser, archived: Settings
) -> None:
    with serving(archived) as server, page_at(browser, 375) as page, console_of(page) as console:
        page.goto(f"{server.url}/archive/")
        page.fill("#q", SUMMARY_WORD.upper())
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        screenshot(page, "search-served-375")
        assert "/archive/search/?q=" in page.url
        results = page.locator(".result-title a")
        assert results.all_inner_texts() == [FIRST_TITLE]
        scroll, client = horizontal_overflow(page)
        assert scroll <= client
        results.first.click()
        page.wait_for_load_state()
        assert page.url.endswith("/archive/2020-11/#article-1")
    assert csp_violations(console) == []


class _StaticHost(http.server.SimpleHTTPRequestHandler):
    """A static host sending the archive's CSP as a header (as docs/web.md advises)."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", ARCHIVE_CSP + "; frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_host(folder: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_StaticHost, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_static_search_runs_its_script_under_the_csp_and_shows_results_as_text(
    browser: Browser, archived: Settings, tmp_path: Path
) -> None:
    source = (archived.issues_dir / "2021-01.md").read_text()
    source = source.replace(
        "## Burnout Among Psychological Practitioners in the NHS",
        "## Burnout <img src=x onerror=alert(1)> videoconferenced",
    )
    archive_fixture(
        archived.root, "2021-02", source, subject="x", finished_at="2021-02-02T14:00:00+00:00"
    )
    out = tmp_path / "public"
    export_static(archived, out)
    with static_host(out) as url, page_at(browser, 800) as page, console_of(page) as console:
        page.goto(f"{url}/search/?q={SUMMARY_WORD}")
        page.wait_for_selector(".result")
        screenshot(page, "search-static-800")
        titles = page.locator(".result-title a").all_inner_texts()
        assert titles == ["Burnout <img src=x onerror=alert(1)> videoconferenced", FIRST_TITLE]
        assert page.locator("#results img").count() == 0  # shown as text, never parsed
        assert page.locator("#search-status").inner_text() == "2 articles found."
        page.locator(".result-title a").nth(1).click()
        page.wait_for_load_state()
        assert page.url.endswith("/2020-11/#article-1")
        page.goto(
            f"{url}/search/?q=ALL%C3%8FANCE+%20screen"
        )  # "ALLÏANCE  screen": folded as served
        page.wait_for_selector(".result")
        assert page.locator(".result-title a").all_inner_texts() == [FIRST_TITLE]
        assert page.input_value("#q") == "ALLÏANCE  screen"
        page.goto(f"{url}/search/?q=no-such-word-anywhere")
        page.wait_for_function("document.getElementById('search-status').textContent.length > 20")
        assert "No article" in page.inner_text("#search-status")
    assert csp_violations(console) == []


def test_an_inline_script_would_be_refused_on_the_static_host(
    browser: Browser, archived: Settings, tmp_path: Path
) -> None:
    """The check above can fail: the same host and console catch a script the CSP refuses."""
    out = tmp_path / "public"
    export_static(archived, out)
    page_file = out / "search" / "index.html"
    page_file.write_text(
        page_file.read_text().replace("</body>", "<script>document.title='ran'</script></body>")
    )
    with static_host(out) as url, page_at(browser, 375) as page, console_of(page) as console:
        page.goto(f"{url}/search/")
        assert page.title() != "ran"
    assert csp_violations(console)


def test_a_missing_search_index_is_named_on_the_static_search_page(
    browser: Browser, archived: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    export_static(archived, out)
    (out / "search" / "index.json").unlink()
    with static_host(out) as url, page_at(browser, 375) as page:
        page.goto(f"{url}/search/?q={SUMMARY_WORD}")
        page.wait_for_function("document.getElementById('search-status').textContent.length > 20")
        status = page.inner_text("#search-status")
        assert "search/index.json" in status
        assert "HTTP 404" in status
