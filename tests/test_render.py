"""Rendering an issue: the HTML's structure and escaping, the plain text, the placeholders."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.issues import doi_url, load_topics, read_issue
from newsletter.models import Article, Issue, IssueStatus, Placeholder, RenderedIssue, personalise
from newsletter.render import render_issue
from newsletter.render.text import WIDTH, TextWriter

OLD_DOI = "10.1002/(SICI)1097-4679(199901)55:1<117::AID-JCLP12>3.0.CO;2-A"
LINK = "https://example.org/study?id=7&lang=en"

TRICKY = f"""---
subject: "Łódź & <mentalizing> — naïve tests"
preheader: A file with every awkward thing an author might type into an issue.
status: draft
---

An intro that says a < b & c and writes <script>alert("x")</script> as text.

## Drop-out <b>in</b> group therapy
Citation: Ödman, P. & Ñúñez, J. (1999). *Journal of Clinical Psychology*, 55(1), 117–125.
DOI: {OLD_DOI}
Topics: attendance, attrition, and drop-out; Group Psychotherapy
Bottom line: Ask about expectations early — naïve <script> stays text, see [the study]({LINK}).

The summary links [a study]({LINK}), then [the same study]({LINK}) again, and
[another one](https://example.org/other). A long word follows:
Pneumonoultramicroscopicsilicovolcanoconiosis-and-then-some-more-letters-to-overflow-a-phone.

![A chart of drop-out rates by month](https://example.org/chart.png)

    rate = early_exits / (early_exits + completers)  # per clinic

### Practice Implications
- Ask early about expectations; this bullet is long enough that it must wrap onto a second line.
- Keep <script> as text.

## A second article without a DOI
Citation: Someone, A. (2021). A report.
Link: https://example.org/report/2021/a-very-long-path-that-goes-on-and-on-and-on-without-any-break
Topics: Training

Plain summary.

### Practice Implications
Plain implications.
"""


class _Structure(HTMLParser):
    """Tags, attributes and text of an HTML document, for assertions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_of: dict[str, list[str]] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3", "title", "a"):
            self._open.append(tag)
            self.text_of.setdefault(tag, []).append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for tag in dict.fromkeys(self._open):  # a link's words belong to its heading too
            self.text_of[tag][-1] += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def texts(self, tag: str) -> list[str]:
        return [" ".join(text.split()) for text in self.text_of.get(tag, [])]


def structure(html: str) -> _Structure:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture
def tricky(project: Path, settings: Settings) -> Issue:
    path = project / "issues" / "2031-05.md"
    path.write_text(TRICKY, encoding="utf-8")
    return read_issue(path, load_topics(settings.topics_file))


def render(issue: Issue, settings: Settings) -> RenderedIssue:
    return render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )


@pytest.fixture
def rendered(tricky: Issue, settings: Settings) -> RenderedIssue:
    return render(tricky, settings)


def test_html_is_a_whole_document_in_english(rendered: RenderedIssue) -> None:
    assert rendered.html.startswith("<!DOCTYPE html>")
    html = structure(rendered.html)
    assert html.all("html")[0]["lang"] == "en"
    assert html.texts("title") == ["Łódź & <mentalizing> — naïve tests"]
    viewport = [m for m in html.all("meta") if m.get("name") == "viewport"]
    assert viewport and "width=device-width" in (viewport[0]["content"] or "")


def test_real_headings_the_headline_an_h2_per_article_and_practice_implications(
    rendered: RenderedIssue, tricky: Issue
) -> None:
    html = structure(rendered.html)
    assert html.texts("h1") == [tricky.subject]  # the issue's headline, not the sender's name
    assert html.texts("h2") == ["In this issue"] + [article.title for article in tricky.articles]
    assert html.texts("h3") == ["Practice Implications"] * len(tricky.articles)


def test_doi_link_percent_encodes_reserved_characters(rendered: RenderedIssue) -> None:
    hrefs = [a["href"] for a in structure(rendered.html).all("a")]
    expected = "https://doi.org/10.1002/(SICI)1097-4679(199901)55:1%3C117::AID-JCLP12%3E3.0.CO;2-A"
    assert doi_url(OLD_DOI) == expected
    assert expected in hrefs
    assert expected in rendered.text.splitlines()


def test_doi_links_read_as_words_not_as_raw_addresses(rendered: RenderedIssue) -> None:
    html = structure(rendered.html)
    doi_links = [a for a in html.all("a") if a["href"].startswith("https://doi.org/")]
    assert doi_links
    assert "https://doi.org/" not in "".join(html.texts("a"))
    escaped = OLD_DOI.replace("<", "&lt;").replace(">", "&gt;")
    assert f"(DOI&nbsp;{escaped})" in rendered.html or f"(DOI\xa0{escaped})" in rendered.html


def test_title_links_to_the_study_and_source_line_gives_journal_and_year(
    rendered: RenderedIssue, tricky: Issue
) -> None:
    html = rendered.html
    assert f'href="{doi_url(OLD_DOI)}"' in html
    title_link = re.search(r"<h2[^>]*><a [^>]*href=\"([^\"]+)\"", html)
    assert title_link and title_link.group(1) == doi_url(OLD_DOI)
    assert "Journal of Clinical Psychology · 1999" in html
    assert "Journal of Clinical Psychology · 1999" in rendered.text


def test_in_this_issue_lists_every_article_with_its_bottom_line(
    rendered: RenderedIssue, tricky: Issue
) -> None:
    html, text = rendered.html, rendered.text
    toc = html[html.index("In this issue") : html.index("<h2", html.index("In this issue"))]
    for article in tricky.articles:
        assert article.title.replace("<", "&lt;").replace(">", "&gt;") in toc
    assert "Ask about expectations early — naïve &lt;script&gt; stays text" in toc
    assert html.count("Ask about expectations early") == 2  # the list, and under the title
    assert "<strong>Bottom line:</strong>" in html
    assert text.index("In this issue") < text.index("1. Drop-out <b>in</b> group therapy")
    assert "Bottom line: Ask about expectations early — naïve <script> stays text" in text
    assert "&lt;" not in text


def test_article_order_bottom_line_summary_practice_implications_reference(
    rendered: RenderedIssue,
) -> None:
    for body in (rendered.html, rendered.text):
        first = body.index("Drop-out <b>in</b>" if body is rendered.text else "Drop-out &lt;b&gt;")
        positions = [
            body.index(marker, first)
            for marker in ("Bottom line:", "The summary links", "Practice Implications", "Ödman")
        ]
        assert positions == sorted(positions), body[:0]


def test_topic_tags_link_to_the_archive_topic_pages(
    rendered: RenderedIssue, settings: Settings
) -> None:
    hrefs = [a["href"] for a in structure(rendered.html).all("a")]
    url = settings.links.topic_url("Attendance, Attrition, and Drop-Out")
    assert url == f"{settings.links.archive_url}/topics/attendance-attrition-and-drop-out/"
    assert url in hrefs


def test_forwarded_readers_can_subscribe(rendered: RenderedIssue, settings: Settings) -> None:
    subscribe = f"{settings.links.base_url}/subscribe"
    assert subscribe in [a["href"] for a in structure(rendered.html).all("a")]
    assert "Forwarded to you?" in rendered.html
    assert f"Forwarded to you? Subscribe:\n{subscribe}\n" in rendered.text


def test_no_font_size_under_14px(rendered: RenderedIssue) -> None:
    body = rendered.html[rendered.html.index("<body") :]
    preheader_end = body.index("</div>")  # the hidden preview text sets font-size:0 on purpose
    # 0px only on MJML's layout wrappers and the divider rule, which hold no words
    sizes = {int(size) for size in re.findall(r"font-size:\s*(\d+)px", body[preheader_end:])}
    assert sizes and min(sizes - {0}) >= 14, sorted(sizes)
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", rendered.html, re.DOTALL))
    assert min(int(size) for size in re.findall(r"font-size:\s*(\d+)px", styles)) >= 14


def test_practice_implications_is_a_table_cell_with_a_background(rendered: RenderedIssue) -> None:
    """Outlook for Windows draws a cell's background; it ignores a div's padding and background."""
    cells = [
        td
        for td in structure(rendered.html).all("td")
        if "nl-implications" in (td.get("class") or "")
    ]
    assert len(cells) == 2
    for cell in cells:
        assert cell.get("bgcolor") and "background-color" in (cell.get("style") or "")
    boxes = re.findall(r"<table[^>]*>\s*<tr>\s*<td[^>]*nl-implications", rendered.html)
    assert len(boxes) == 2 and all('role="presentation"' in box for box in boxes)


def test_article_without_doi_links_to_its_link(rendered: RenderedIssue, tricky: Issue) -> None:
    link = tricky.articles[1].link
    assert link in [a["href"] for a in structure(rendered.html).all("a")]
    assert link in rendered.text.splitlines()


def test_text_that_looks_like_html_is_escaped_in_html(rendered: RenderedIssue) -> None:
    html = structure(rendered.html)
    assert not html.all("script") and not html.all("b")
    assert "a &lt; b &amp; c" in rendered.html
    assert "&lt;script&gt;alert(" in rendered.html
    assert "Drop-out &lt;b&gt;in&lt;/b&gt; group therapy" in rendered.html
    assert "<script" not in rendered.html.lower()


def test_text_that_looks_like_html_appears_as_typed_in_text(rendered: RenderedIssue) -> None:
    text = rendered.text
    assert "a < b & c" in text
    assert '<script>alert("x")</script>' in text
    assert "Drop-out <b>in</b> group therapy" in text
    assert "&lt;" not in text and "&amp;" not in text and "&quot;" not in text


def test_non_ascii_survives_both_versions(rendered: RenderedIssue) -> None:
    for body in (rendered.html, rendered.text):
        assert "Ödman" in body and "Ñúñez" in body and "117–125" in body


def test_topics_with_commas_are_shown_whole(rendered: RenderedIssue) -> None:
    assert ">Attendance, Attrition, and Drop-Out<" in rendered.html
    assert "Topics: Attendance, Attrition, and Drop-Out; Group Psychotherapy" in rendered.text


def test_text_is_wrapped_at_72_columns_except_unbreakable_words(rendered: RenderedIssue) -> None:
    long_lines = [line for line in rendered.text.splitlines() if len(line) > WIDTH]
    assert long_lines, "the tricky issue has URLs longer than a line"
    for line in long_lines:
        longest = max(line.split(), key=len)
        assert len(longest) > WIDTH - 8, f"a breakable line is too long: {line!r}"
        assert "://" in longest or "-" in longest


def test_text_links_are_numbered_references_listed_at_the_end(rendered: RenderedIssue) -> None:
    text = rendered.text
    assert "a study [1]" in text.replace("\n", " ")
    assert "the same study [1]" in text.replace("\n", " ")
    assert "another one [2]" in text.replace("\n", " ")
    assert "[A chart of drop-out rates by month] [3]" in text.replace("\n", " ")
    tail = text[text.rindex("Links") :]
    assert f"[1] {LINK}" in tail
    assert "[2] https://example.org/other" in tail
    assert "[3] https://example.org/chart.png" in tail


def test_images_carry_alt_text_and_cannot_overflow(rendered: RenderedIssue) -> None:
    images = structure(rendered.html).all("img")
    assert images
    for image in images:
        assert image.get("alt")
        assert "max-width:100%" in (image.get("style") or "").replace(" ", "")


def test_long_words_and_links_may_break(rendered: RenderedIssue) -> None:
    for link in structure(rendered.html).all("a"):
        style = (link.get("style") or "").replace(" ", "")
        assert "word-break:break-word" in style or "overflow-wrap:anywhere" in style, link


def test_dark_mode_and_media_queries_survive_inlining(rendered: RenderedIssue) -> None:
    html = rendered.html
    metas = {m.get("name"): m.get("content") for m in structure(html).all("meta")}
    assert metas["color-scheme"] == "light dark"
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", html, re.DOTALL))
    assert "prefers-color-scheme: dark" in styles
    assert "max-width: 480px" in styles
    assert 'class="nl-text' in html  # the classes the media queries need are kept


def test_preheader_is_hidden_at_the_top_of_the_body_without_a_colour_trick(
    rendered: RenderedIssue,
) -> None:
    body = rendered.html[rendered.html.index("<body") :]
    preheader = re.search(r"<div[^>]*nl-preheader[^>]*>([^<]*)</div>", body)
    assert preheader, "no preheader div"
    assert not re.sub(r"<[^>]+>|\s", "", body[: preheader.start()])  # no text before it
    assert rendered.preheader in preheader.group(1)
    style = preheader.group(0).split(">")[0].replace(" ", "")
    for rule in ("display:none", "max-height:0", "overflow:hidden", "mso-hide:all", "font-size:0"):
        assert rule in style
    # text coloured like its background is what SpamAssassin scores (HTML_FONT_LOW_CONTRAST)
    assert "color:" not in style.replace("background-color:", "")


def test_view_in_browser_and_footer(rendered: RenderedIssue, settings: Settings) -> None:
    hrefs = [a["href"] for a in structure(rendered.html).all("a")]
    issue_url = settings.links.issue_url("2031-05")
    assert issue_url in hrefs and issue_url in rendered.text
    contact = settings.sender.reply_to or settings.sender.email
    for body in (rendered.html, rendered.text):
        footer = body[body.index("because you subscribed") :]
        assert settings.sender.postal_address in footer
        assert contact in footer  # the text footer gives the same contact address as the HTML


def test_placeholders_are_left_for_personalise(rendered: RenderedIssue) -> None:
    hrefs = [a["href"] for a in structure(rendered.html).all("a")]
    for placeholder in Placeholder:
        assert placeholder.value in hrefs
        assert placeholder.value in rendered.text
    values = {
        Placeholder.UNSUBSCRIBE_URL: "https://n.example/unsubscribe/tok-1",
        Placeholder.PREFERENCES_URL: "https://n.example/preferences/tok-1",
    }
    for body in (rendered.html, rendered.text):
        filled = personalise(body, values)
        assert "__NL_" not in filled
        assert "https://n.example/unsubscribe/tok-1" in filled
        assert "https://n.example/preferences/tok-1" in filled


def test_missing_preheader_falls_back_to_the_article_titles(
    tricky: Issue, settings: Settings
) -> None:
    result = render(replace(tricky, preheader=None), settings)
    assert result.preheader.startswith("This month: Drop-out <b>in</b> group therapy")
    assert "This month: Drop-out &lt;b&gt;in&lt;/b&gt;" in result.html


def test_issue_without_intro(tricky: Issue, settings: Settings) -> None:
    result = render(replace(tricky, intro=""), settings)
    assert "a &lt; b" not in result.html
    assert structure(result.html).texts("h2")[:2] == ["In this issue", tricky.articles[0].title]


def test_sample_issues_render_small(settings: Settings) -> None:
    topics = load_topics(settings.topics_file)
    for path in sorted(settings.issues_dir.glob("20*.md")):
        result = render(read_issue(path, topics), settings)
        assert len(result.html.encode()) < 102 * 1024
        assert result.mjml.lstrip().startswith("{#") is False and "<mjml" in result.mjml


def test_a_template_mistake_is_a_located_render_error(
    tricky: Issue, settings: Settings, project: Path
) -> None:
    article = project / "templates" / "email" / "article.mjml.j2"
    article.write_text(article.read_text() + "\n{{ article.no_such_field }}\n")
    with pytest.raises(RenderError, match=r"article\.mjml\.j2:\d+: template error"):
        render(tricky, settings)
    article.write_text("{% if %}\n")
    with pytest.raises(RenderError, match=r"article\.mjml\.j2:1: template error"):
        render(tricky, settings)


def test_unknown_mjml_element_is_a_render_error(
    tricky: Issue, settings: Settings, project: Path
) -> None:
    article = project / "templates" / "email" / "article.mjml.j2"
    article.write_text("<mj-section><mj-column><mj-textt>x</mj-textt></mj-column></mj-section>")
    with pytest.raises(RenderError, match="mj-textt"):
        render(tricky, settings)


def test_missing_template_is_a_render_error(tricky: Issue, settings: Settings) -> None:
    (settings.templates_dir / "email" / "email.txt.j2").unlink()
    with pytest.raises(RenderError, match=r"email\.txt\.j2: template not found"):
        render(tricky, settings)


# --- the text writer on its own ----------------------------------------------------------------


def test_text_writer_lists_and_quotes() -> None:
    writer = TextWriter(width=30)
    out = writer.block(
        "Intro *with* **marks**.\n\n3. third item that wraps over lines\n4. four\n\n> quoted words here"
    )
    assert out.splitlines() == [
        "Intro with marks.",
        "",
        "3. third item that wraps over",
        "   lines",
        "4. four",
        "",
        "> quoted words here",
    ]


def test_text_writer_keeps_autolinks_and_mailto_inline() -> None:
    writer = TextWriter()
    out = writer.block(
        "See <https://example.org/x> or [editor@example.org](mailto:editor@example.org)."
    )
    assert out == "See https://example.org/x or editor@example.org."
    assert writer.links == []


def test_article_fixture_builds_without_the_parser(settings: Settings) -> None:
    """Render works on any Issue value, not only on parsed files."""
    article = Article(
        title="T",
        citation="C.",
        doi="10.1000/x",
        link=None,
        topics=("Training",),
        summary="S.",
        implications="I.",
    )
    issue = Issue(
        month="2030-02",
        path=Path("issues/2030-02.md"),
        subject="S",
        preheader="P",
        status=IssueStatus.READY,
        intro="",
        articles=(article,),
    )
    result = render(issue, settings)
    assert "February 2030" in result.html and "https://doi.org/10.1000/x" in result.text


def test_the_email_language_comes_from_site_lang(settings: Settings, tricky: Issue) -> None:
    rendered = render_issue(
        tricky,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        lang="fr-CA",
    )
    assert re.search(r'<html[^>]*\blang="fr-CA"', rendered.html)
