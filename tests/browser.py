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
