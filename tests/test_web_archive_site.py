"""The archive as a website (real HTTP to the app in-process, and the static export): issue pages
built from the issue's data, meta tags, DOI extras, search, and the ``site`` settings."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import markupsafe
import pytest
from starlette.testclient import TestClient

from newsletter.config import Settings, Site, load_settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.doi.record import CORRECTION, RETRACTION, Update
from newsletter.doi.store import MetadataStore
from newsletter.errors import ConfigError
from newsletter.issues import load_topics, read_issue
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.web.app import create_app
from newsletter.web.archive import ARCHIVE_CSP, export_static
from newsletter.web.search import fold, plain_text, query_words
from tests.dbkit import db
from tests.webkit import archive_fixture, archive_samples, in_process

MONTHS = ("2020-11", "2020-12", "2021-01")
PELUSO = "10.1037/pst0000165"  # the second article of 2020-11
FREE = "https://repository.example/peluso.pdf"


def escape(text: str) -> str:
    return str(markupsafe.escape(text))


@pytest.fixture
def archived(settings: Settings) -> Settings:
    return archive_samples(settings, MONTHS)


@pytest.fixture
def site(archived: Settings) -> Iterator[TestClient]:
    with in_process(create_app(archived)) as http:
        yield http


def meta(page: str, key: str) -> str | None:
    """The content of ``<meta name|property=key>`` (the value as the page has it, escaped)."""
    found = re.search(rf'<meta (?:name|property)="{re.escape(key)}" content="([^"]*)">', page)
    return found.group(1) if found else None


def test_an_issue_page_is_a_web_page_not_the_email(settings: Settings) -> None:
    SubscriberStore(open_database(settings.database_url)).add("reader@example.com")
    issue = read_issue(settings.issues_dir / "2020-11.md", load_topics(settings.topics_file))
    send_issue(settings, db(settings), issue, transport=MemoryTransport())
    with in_process(create_app(settings)) as http:
        page = http.get("/archive/2020-11/").text
    for email_only in (
        "Unsubscribe",
        "View this issue in your browser",
        "You are receiving",
        "Manage your preferences",
        "reader@example.com",
    ):
        assert email_only not in page, email_only
    assert '<html lang="en">' in page
    assert page.count("<h1>") == 1 and f"<h1>{escape(issue.subject)}</h1>" in page
    assert 'id="article-1"' in page and 'id="article-2"' in page
    assert "<script" not in page


def test_an_issue_page_reads_in_the_emails_order(archived: Settings, site: TestClient) -> None:
    """Title, source, bottom line, summary, Practice Implications, then the reference with a
    readable DOI link (not the raw address); the contents list shows each bottom line."""
    page = site.get("/archive/2021-01/").text
    first = page.index('id="article-1"')
    positions = [
        page.index(marker, first)
        for marker in (
            "Clinical Psychology &amp; Psychotherapy · 2020",
            "Bottom line:",
            "Burnout is a particular kind of work stress",
            "Practice Implications",
            "Summers, E. M.",
            ">Read the study</a> (DOI&nbsp;10.1002/cpp.2509)",
            'class="tag"',
        )
    ]
    assert positions == sorted(positions)
    assert ">https://doi.org/" not in page  # no raw DOI address as link text
    contents = page[page.index('aria-label="In this issue"') : first]
    assert contents.count('class="contents-bottom"') == 2


def test_meta_description_canonical_and_open_graph(archived: Settings, site: TestClient) -> None:
    base = archived.links.archive_url
    page = site.get("/archive/2020-11/").text
    issue = read_issue(archived.issues_dir / "2020-11.md", load_topics(archived.topics_file))
    assert issue.preheader
    assert meta(page, "description") == escape(issue.preheader)
    assert meta(page, "og:description") == escape(issue.preheader)
    assert f'<link rel="canonical" href="{base}/2020-11/">' in page
    assert meta(page, "og:url") == f"{base}/2020-11/"
    assert meta(page, "og:type") == "article"
    assert meta(page, "og:title") == escape(issue.subject)
    assert meta(page, "og:site_name") == "PPRNet Monthly"
    assert meta(page, "article:published_time") == "2020-11-05T14:00:00+00:00"
    assert meta(page, "Content-Security-Policy") is None  # http-equiv, checked below
    assert f'<meta http-equiv="Content-Security-Policy" content="{escape(ARCHIVE_CSP)}">' in page

    listing = site.get("/archive/").text
    assert f'<link rel="canonical" href="{base}/">' in listing
    assert meta(listing, "description") == escape(archived.site.description)
    assert meta(listing, "og:type") == "website"
    topic = site.get("/archive/topics/therapist-factors/").text
    assert f'<link rel="canonical" href="{base}/topics/therapist-factors/">' in topic
    assert "Therapist Factors" in (meta(topic, "description") or "")
    search_page = site.get("/archive/search/").text
    assert f'<link rel="canonical" href="{base}/search/">' in search_page


def test_topic_and_listing_pages_link_to_the_article_anchor(site: TestClient) -> None:
    topic = site.get("/archive/topics/therapist-factors/").text
    assert (
        '<h2><a href="../../2020-11/#article-1">Building the Alliance Through a Screen</a></h2>'
        in topic
    )
    assert topic.count("<h3>Practice Implications</h3>") == 4
    assert (
        "Research on video therapy has not kept pace" in topic
    )  # 2020-11 article 1's implications
    listing = site.get("/archive/").text
    assert 'href="2020-11/#article-2">Expressed Emotion and How Therapy Turns Out</a>' in listing
    feed = ET.fromstring(site.get("/archive/topics/therapist-factors/feed.xml").content)
    atom = "{http://www.w3.org/2005/Atom}"
    links = [e.find(f"{atom}link[@rel='alternate']") for e in feed.findall(f"{atom}entry")]
    assert all(link is not None and "#article-" in (link.get("href") or "") for link in links)


def test_the_doi_extras_are_on_the_issue_page(archived: Settings, site: TestClient) -> None:
    kept = MetadataStore(archived.archive_dir / "2020-11" / "records")
    record = MetadataStore(archived.issues_dir / ".metadata").get(PELUSO)
    assert record is not None
    kept.put(
        dataclasses.replace(
            record,
            free_url=FREE,
            updates=(
                Update(CORRECTION, "10.1037/pst0000999", "2021-02-09"),
                Update(RETRACTION, "10.1037/pst0000998", ""),
            ),
        )
    )
    (archived.archive_dir / "2020-11" / "issue.md").touch()
    page = site.get("/archive/2020-11/").text
    head, body = page.split("</head>")
    assert '<meta name="citation_doi" content="10.1037/pst0000165">' in head
    assert 'href="references.ris"' in head and 'href="references.bib"' in head
    article = body.split('id="article-2"')[1]
    assert f'<a class="free" href="{FREE}">Free full text</a>' in article
    assert (
        '<strong>Correction</strong> (2021-02-09): <a href="https://doi.org/10.1037/pst0000999">'
        in article
    )
    assert '<strong>Retraction</strong>: <a href="https://doi.org/10.1037/pst0000998">' in article
    top = body.split('id="article-1"')[0]  # found after sending: also at the top
    assert "<strong>Retraction</strong> (undated) of “Expressed Emotion" in top
    assert '<a href="#article-2">the summary</a>' in top
    assert '<a href="references.bib" download>BibTeX</a>' in body


def test_everything_on_an_issue_page_and_in_search_is_escaped(
    archived: Settings, site: TestClient
) -> None:
    source = (archived.issues_dir / "2021-01.md").read_text()
    source = source.replace(
        "## Burnout Among Psychological Practitioners in the NHS",
        "## Burnout <script>alert(1)</script> & more",
    ).replace("subject: Therapist", 'subject: <img src=x onerror=alert(1)> " Therapist')
    archive_fixture(
        archived.root, "2021-02", source, subject="x", finished_at="2021-02-02T14:00:00+00:00"
    )
    page = site.get("/archive/2021-02/").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert 'content="&lt;img src=x onerror=alert(1)&gt; &#34; Therapist' in page  # og:title
    found = site.get("/archive/search/", params={"q": "alert"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in found
    assert "<script>" not in found
    echoed = site.get("/archive/search/", params={"q": '"><script>x</script>'}).text
    assert "<script>x" not in echoed and 'value="&#34;&gt;&lt;script&gt;x' in echoed


def test_the_served_search_finds_titles_summaries_and_citations(site: TestClient) -> None:
    def titles(query: str) -> list[str]:
        page = site.get("/archive/search/", params={"q": query})
        assert page.status_code == 200
        return re.findall(r'<h2 class="result-title"><a href="[^"]+">([^<]+)</a>', page.text)

    assert titles("videoconferenced") == ["Building the Alliance Through a Screen"]  # summary
    assert titles("Peluso") == ["Expressed Emotion and How Therapy Turns Out"]  # citation
    assert titles("THROUGH a screen") == ["Building the Alliance Through a Screen"]  # title
    assert titles("ALLÏANCE  screen") == ["Building the Alliance Through a Screen"]  # folded
    assert titles("videoconferenced meta-analysis") == []  # every word must occur
    assert titles("") == [] and titles("   ") == []
    page = site.get("/archive/search/", params={"q": "videoconferenced"}).text
    assert 'href="../2020-11/#article-1"' in page and "1 article found." in page
    assert "No article holds every word" in site.get("/archive/search/?q=zzzz").text
    long = site.get("/archive/search/", params={"q": "x" * 5000})
    assert long.status_code == 200 and "x" * 201 not in long.text  # only 200 characters are read
    assert '<meta name="robots" content="noindex">' in page  # results are not for search engines
    assert 'name="robots"' not in site.get("/archive/search/").text


def test_the_static_export_ships_the_index_and_the_script(
    archived: Settings, site: TestClient, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    export_static(archived, out)
    index = json.loads((out / "search" / "index.json").read_text())
    hrefs = [doc["href"] for doc in index["articles"]]
    assert hrefs[0].startswith("2021-01/#article-") and "2020-11/#article-1" in hrefs
    first = next(doc for doc in index["articles"] if doc["href"] == "2020-11/#article-1")
    assert "videoconferenced" in first["text"] and first["month"] == "November 2020"
    static_page = (out / "search" / "index.html").read_text()
    assert '<script src="search.js" defer></script>' in static_page
    assert re.search(r"<script>", static_page) is None  # no inline script anywhere
    served = site.get("/archive/search/index.json")
    assert served.headers["content-type"].startswith("application/json")
    assert served.content == (out / "search" / "index.json").read_bytes()
    script = site.get("/archive/search/search.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "textContent" in script.text and "innerHTML" not in script.text
    assert "<script" not in site.get("/archive/search/").text  # the served page needs none


def test_text_folding_and_markdown_to_words() -> None:
    assert fold("Müller  CAFÉ") == "muller cafe"
    assert query_words("  Straße ") == ["strasse"]
    assert plain_text("A *b* [link](https://x.example)\n\n- item") == "A b link item"


# --- the `site` section of schedule.yaml ------------------------------------------------------


def _replace(project: Path, old: str, new: str) -> None:
    path = project / "schedule.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _site_section(project: Path) -> str:
    text = (project / "schedule.yaml").read_text()
    return re.search(r"(?m)^site:\n(?:  .*\n)+", text).group(0)  # type: ignore[union-attr]


def test_the_site_section_is_optional_with_defaults(project: Path) -> None:
    _replace(project, _site_section(project), "")
    assert load_settings(project, env={}).site == Site()
    assert Site().lang == "en" and Site().feed_subtitle == Site().description


def test_site_values_reach_the_pages_and_the_feed(project: Path, clean_env: None) -> None:
    _replace(
        project,
        _site_section(project),
        "site:\n  description: Recherche en psychothérapie\n"
        "  feed_subtitle: Chaque mois, la recherche\n  lang: fr-CA\n",
    )
    settings = load_settings(project, env={})
    with in_process(create_app(settings)) as http:
        listing = http.get("/archive/").text
        feed = ET.fromstring(http.get("/archive/feed.xml").content)
        form = http.get("/subscribe").text
    assert '<html lang="fr-CA">' in listing and '<html lang="fr-CA">' in form
    assert meta(listing, "description") == "Recherche en psychothérapie"
    assert feed.findtext("{http://www.w3.org/2005/Atom}subtitle") == "Chaque mois, la recherche"


def test_the_feed_subtitle_defaults_to_the_description(project: Path) -> None:
    _replace(project, _site_section(project), "site:\n  description: Just this\n")
    site = load_settings(project, env={}).site
    assert site.feed_subtitle == "Just this" and site.lang == "en"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("site:\n  lang: en_US\n", '`site.lang`: expected a language tag such as "en"'),
        ("site:\n  lang: english\n", "`site.lang`"),
        ("site:\n  description: " + "x" * 301 + "\n", "`site.description`: 301 characters"),
        ("site:\n  langauge: en\n", '`site.langauge`: unknown key (did you mean "lang"?)'),
        ("site:\n  feed_subtitle: [a, b]\n", "`site.feed_subtitle`: expected a single value"),
        ("site: yes\n", "`site`: expected a section"),
    ],
)
def test_a_bad_site_value_is_a_located_error(project: Path, section: str, expected: str) -> None:
    _replace(project, _site_section(project), section)
    with pytest.raises(ConfigError) as info:
        load_settings(project, env={})
    message = str(info.value)
    assert expected in message
    line = int(message.split("schedule.yaml:")[1].split(":")[0])
    wrong = (project / "schedule.yaml").read_text().splitlines()[line - 1]
    assert wrong.strip().split(":")[0] in section
