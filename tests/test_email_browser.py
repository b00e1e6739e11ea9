"""The built email in headless Chromium: no sideways scrolling on phones, dark mode applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser

from newsletter.cli import main
from tests.browser import chromium, horizontal_overflow, page_at
from tests.test_render import TRICKY

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def build(project: Path, issue: str) -> Path:
    out = project / "build" / "out"
    result = CliRunner().invoke(
        main, ["--project", str(project), "build", issue, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out / "email.html"


@pytest.fixture
def sample_email(project: Path, clean_env: None) -> Path:
    return build(project, "2021-01")


@pytest.fixture
def tricky_email(project: Path, clean_env: None) -> Path:
    """Long DOIs, long links and a very long word: the things that push a phone layout wide."""
    (project / "issues" / "2031-05.md").write_text(TRICKY, encoding="utf-8")
    return build(project, "2031-05")


@pytest.mark.parametrize("width", [375, 320])
def test_sample_issue_does_not_scroll_sideways_on_a_phone(
    browser: Browser, sample_email: Path, width: int
) -> None:
    with page_at(browser, width) as page:
        page.goto(sample_email.as_uri())
        scroll_width, client_width = horizontal_overflow(page)
        assert client_width == width
        assert scroll_width <= client_width


@pytest.mark.parametrize("width", [375, 320])
def test_long_dois_and_words_wrap_instead_of_widening_the_page(
    browser: Browser, tricky_email: Path, width: int
) -> None:
    with page_at(browser, width) as page:
        page.goto(tricky_email.as_uri())
        scroll_width, client_width = horizontal_overflow(page)
        assert scroll_width <= client_width
        doi_link = page.locator("a[href*='SICI']")
        box = doi_link.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width


def test_desktop_width_is_centred_and_capped(browser: Browser, sample_email: Path) -> None:
    with page_at(browser, 1200) as page:
        page.goto(sample_email.as_uri())
        heading = page.locator("h1").bounding_box()
        assert heading is not None
        assert 250 < heading["x"] < 400  # a 640 px column in the middle of 1200 px
        assert horizontal_overflow(page)[0] <= 1200


def test_dark_mode_turns_the_background_dark(browser: Browser, sample_email: Path) -> None:
    def background(scheme: str) -> str:
        with page_at(browser, 700) as page:
            page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
            page.goto(sample_email.as_uri())
            return str(
                page.evaluate(
                    "() => getComputedStyle(document.querySelector('.nl-card')).backgroundColor"
                )
            )

    assert background("light") == "rgb(255, 255, 255)"
    assert background("dark") == "rgb(27, 33, 38)"


def test_headings_and_links_are_visible(browser: Browser, sample_email: Path) -> None:
    with page_at(browser, 375) as page:
        page.goto(sample_email.as_uri())
        assert page.locator("h1").is_visible()
        assert page.locator("h2").count() == 2
        assert page.get_by_role("link", name="Unsubscribe").is_visible()
        assert page.get_by_role("link", name="View this issue in your browser").is_visible()
        preheader = page.get_by_text("Two studies on how practitioners fare")
        assert not preheader.is_visible()  # hidden inbox preview text
