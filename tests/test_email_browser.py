"""The built email in headless Chromium: no sideways scrolling, no small text, the practice point
early, dark mode applied; at phone (320, 375), small (600) and desktop (800) widths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser

from newsletter.cli import main
from tests.browser import chromium, horizontal_overflow, page_at, text_sizes, top_of
from tests.test_render import TRICKY

pytestmark = pytest.mark.browser

WIDTHS = [320, 375, 600, 800]
SCHEMES = ["light", "dark"]
# Before the redesign the first practice point (its Practice Implications box) began 1,270 px down
# at 375 px, after the reference, the DOI and the whole summary. Now each article's practice point
# in one sentence (its bottom line) is in the "In this issue" list (~440 px down) and again under
# the article's title (~790 px), before the summary and the box.
FIRST_TOC_BOTTOM_LINE_MAX_TOP = 600
FIRST_BOTTOM_LINE_MAX_TOP = 1000


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


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_sample_issue_fits_reads_and_shows_its_parts(
    browser: Browser, sample_email: Path, width: int, scheme: str
) -> None:
    with page_at(browser, width) as page:
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        page.goto(sample_email.as_uri())
        scroll_width, client_width = horizontal_overflow(page)
        assert client_width == width
        assert scroll_width <= client_width
        sizes = text_sizes(page)
        assert len(sizes) > 50
        assert sizes[0][0] >= 14, [size for size in sizes if size[0] < 14]
        assert page.get_by_role("heading", level=1, name="Therapist well-being").is_visible()
        assert page.get_by_role("heading", name="In this issue").is_visible()
        assert page.locator(".nl-toc li").count() == 2
        assert page.locator(".nl-toc-bottom").first.is_visible()
        bottom = page.locator(".nl-bottom").first
        assert bottom.is_visible() and bottom.inner_text().startswith("Bottom line: Burnout")
        assert page.locator("td.nl-implications").count() == 2


@pytest.mark.parametrize("tricky_too", [False, True])
def test_the_first_practice_point_is_near_the_top_on_a_phone(
    browser: Browser, sample_email: Path, tricky_email: Path, tricky_too: bool
) -> None:
    with page_at(browser, 375) as page:
        page.goto((tricky_email if tricky_too else sample_email).as_uri())
        in_list = top_of(page, ".nl-toc-bottom")
        under_title = top_of(page, ".nl-bottom")
        implications = top_of(page, "td.nl-implications")
        assert in_list < FIRST_TOC_BOTTOM_LINE_MAX_TOP
        assert under_title < FIRST_BOTTOM_LINE_MAX_TOP
        # the order of the article: bottom line, summary, Practice Implications, reference
        assert in_list < under_title < implications < top_of(page, ".nl-reference")


@pytest.mark.parametrize("width", WIDTHS)
def test_long_dois_and_words_wrap_instead_of_widening_the_page(
    browser: Browser, tricky_email: Path, width: int
) -> None:
    with page_at(browser, width) as page:
        page.goto(tricky_email.as_uri())
        scroll_width, client_width = horizontal_overflow(page)
        assert scroll_width <= client_width
        for doi_link in page.locator("a[href*='SICI']").all():
            box = doi_link.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width
        reference = page.locator(".nl-reference").first.bounding_box()
        assert reference is not None and reference["x"] + reference["width"] <= width
        assert text_sizes(page)[0][0] >= 14
        assert page.get_by_text("Bottom line: Ask about expectations early").is_visible()
        assert page.get_by_text('<script>alert("x")</script>').is_visible()  # shown, not run


def test_desktop_width_is_centred_and_capped(browser: Browser, sample_email: Path) -> None:
    with page_at(browser, 1200) as page:
        page.goto(sample_email.as_uri())
        heading = page.locator("h1").bounding_box()
        assert heading is not None
        assert 250 < heading["x"] < 400  # a 600 px column in the middle of 1200 px
        text = page.locator(".nl-intro").bounding_box()
        assert text is not None and text["width"] <= 600  # about 70 characters a line
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
        assert page.locator("h2").count() == 3  # "In this issue" and the two articles
        assert page.get_by_role("link", name="Burnout Among Psychological").is_visible()
        assert page.get_by_role("link", name="Subscribe", exact=True).is_visible()
        assert page.get_by_role("link", name="Therapist Factors").first.is_visible()
        assert page.get_by_role("link", name="Unsubscribe").is_visible()
        assert page.get_by_role("link", name="View this issue in your browser").is_visible()
        preheader = page.get_by_text("Two studies on how practitioners fare")
        assert not preheader.is_visible()  # hidden inbox preview text
