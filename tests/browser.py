"""Headless Chromium for tests (Debian's /usr/bin/chromium driven by playwright; no downloads).

``chromium()`` skips the calling test with a reason when Chromium is missing, unless the ``CI``
environment variable is set: then a missing browser is a failure, not a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path(os.environ.get("NEWSLETTER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require_chromium() -> None:
    """Skip (or, under CI, fail) when there is no Chromium to drive."""
    if CHROMIUM.exists():
        return
    message = f"headless Chromium not found at {CHROMIUM} (Debian package `chromium`)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this is a failure", pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the duration of the block."""
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_at(browser: Browser, width: int, height: int = 800) -> Iterator[Page]:
    """A fresh page with a viewport ``width`` CSS pixels wide (a phone at 320/375, desktop ~700+)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


def horizontal_overflow(page: Page) -> tuple[int, int]:
    """``(scrollWidth, clientWidth)`` of the document: equal when nothing scrolls sideways."""
    sizes = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    return int(sizes[0]), int(sizes[1])


# Every visible text node's computed font size: [size in px, the first words], smallest first.
_TEXT_SIZES_JS = """() => {
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const element = node.parentElement;
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden') continue;
    found.push([parseFloat(style.fontSize), node.textContent.trim().slice(0, 40)]);
  }
  return found.sort((a, b) => a[0] - b[0]);
}"""


def text_sizes(page: Page) -> list[tuple[float, str]]:
    """The computed font size of every visible text node, smallest first, with its first words."""
    return [(float(size), str(words)) for size, words in page.evaluate(_TEXT_SIZES_JS)]


def top_of(page: Page, selector: str) -> float:
    """The document y (CSS px) of the first element matching ``selector``."""
    return float(
        page.evaluate(
            "(s) => document.querySelector(s).getBoundingClientRect().top + window.scrollY",
            selector,
        )
    )
