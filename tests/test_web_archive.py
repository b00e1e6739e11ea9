"""The archive site in-process (TestClient), its Atom feed, and the static export (same pages as files)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import markupsafe
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.cli import command as top_command
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import NewsletterError
from newsletter.issues import load_topics, read_issue
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.web.app import create_app
from newsletter.web.archive import export_static, topic_slug
from tests.dbkit import db
from tests.webkit import archive_fixture, archive_samples, in_process

ATOM = "{http://www.w3.org/2005/Atom}"
MONTHS = ("2020-11", "2020-12", "2021-01")
SENT = {
    "2020-11": "2020-11-03T14:00:00+00:00",
    "2020-12": "2020-12-01T14:00:00+00:00",
    "2021-01": "2021-01-05T14:00:00+00:00",
}


@pytest.fixture
def archived(settings: Settings) -> Settings:
    """The three sample issues, archived as if each had been sent on its month's first Tuesday."""
    return archive_samples(settings, MONTHS, SENT)


@pytest.fixture
def site(archived: Settings) -> Iterator[TestClient]:
    with in_process(create_app(archived)) as http:
        yield http


def get(http: httpx.Client, path: str) -> httpx.Response:
    return http.get(path)


def test_the_listing_shows_sent_issues_newest_first_with_articles_and_topics(
    archived: Settings, site: TestClient
) -> None:
    page = get(site, "/archive/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    positions = [page.text.index(f'href="{month}/"') for month in reversed(MONTHS)]
    assert positions == sorted(positions)
    topics = load_topics(archived.topics_file)
    for month in MONTHS:
        issue = read_issue(archived.issues_dir / f"{month}.md", topics)
        assert escape(issue.subject) in page.text
        for article in issue.articles:
            assert escape(article.title) in page.text
            for topic in article.topics:
                assert f'href="topics/{topic_slug(topic)}/"' in page.text
    assert "January 2021" in page.text


def escape(text: str) -> str:
    return str(markupsafe.escape(text))


def test_each_issue_has_its_web_page_built_from_its_file(
    archived: Settings, site: TestClient
) -> None:
    page = get(site, "/archive/2020-12/")
    assert page.status_code == 200
    assert "web version 2020-12" not in page.text  # not the archived email
    issue = read_issue(archived.issues_dir / "2020-12.md", load_topics(archived.topics_file))
    assert f"<h1>{escape(issue.subject)}</h1>" in page.text
    for number, article in enumerate(issue.articles, start=1):
        assert f'<article class="article" id="article-{number}">' in page.text
        assert f'href="#article-{number}">{escape(article.title)}</a>' in page.text
    assert page.text.count("<h3>Practice Implications</h3>") == len(issue.articles)
    for missing in (
        "/archive/2099-01/",
        "/archive/2021-13/",
        "/archive/../schedule.yaml",
        "/archive/2021-01",
    ):
        assert get(site, missing).status_code == 404, missing


def test_a_topic_page_lists_its_articles_across_issues_and_no_others(
    archived: Settings, site: TestClient
) -> None:
    page = get(site, "/archive/topics/therapist-factors/")
    assert page.status_code == 200
    topics = load_topics(archived.topics_file)
    for month in MONTHS:
        issue = read_issue(archived.issues_dir / f"{month}.md", topics)
        for article in issue.articles:
            shown = escape(article.title) in page.text
            assert shown == ("Therapist Factors" in article.topics), article.title
    assert page.text.count('class="issue"') == 4
    assert page.text.index("2021-01/") < page.text.index("2020-11/")  # newest first

    commas = get(site, "/archive/topics/attendance-attrition-and-drop-out/")
    assert commas.status_code == 200
    assert "Stand-Alone Mental Health Apps" in commas.text
    assert get(site, "/archive/topics/astrology/").status_code == 404

    index = get(site, "/archive/topics/")
    assert 'href="therapist-factors/"' in index.text
    assert "(4)" in index.text


def test_the_feed_is_valid_atom_with_one_entry_per_issue(
    archived: Settings, site: TestClient
) -> None:
    answer = get(site, "/archive/feed.xml")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(answer.content)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    assert feed.findtext(f"{ATOM}updated") == "2021-01-05T14:00:00Z"
    self_link = feed.find(f"{ATOM}link[@rel='self']")
    assert self_link is not None
    assert self_link.get("href") == f"{archived.links.archive_url}/feed.xml"
    entries = feed.findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}id") for entry in entries] == [
        archived.links.issue_url(month) for month in reversed(MONTHS)
    ]
    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for entry in entries:
        assert entry.findtext(f"{ATOM}title")
        assert rfc3339.match(entry.findtext(f"{ATOM}updated") or "")
        link = entry.find(f"{ATOM}link[@rel='alternate']")
        assert link is not None and link.get("href") == entry.findtext(f"{ATOM}id")
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"
        assert entry.findall(f"{ATOM}category")
    assert "Therapist well-being" in (entries[0].findtext(f"{ATOM}title") or "")


def test_the_static_export_writes_the_same_pages(
    archived: Settings, site: TestClient, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    written = export_static(archived, out)
    files = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(out).as_posix() for path in written)
    assert "index.html" in files and "feed.xml" in files
    assert {f"{month}/index.html" for month in MONTHS} <= set(files)
    assert "topics/therapist-factors/index.html" in files
    for relative in files:
        url = "/archive/" + relative.removesuffix("index.html")
        served = get(site, url)
        assert served.status_code == 200, url
        if relative == "search/index.html":
            continue  # the one page that differs: the static one runs search.js (see test_web_search)
        assert served.content == (out / relative).read_bytes(), relative
    assert {"search/index.html", "search/index.json", "search/search.js"} <= set(files)


def test_a_new_export_replaces_the_old_one_whole(archived: Settings, tmp_path: Path) -> None:
    out = tmp_path / "public"
    export_static(archived, out)
    (archived.archive_dir / "2020-12" / "send.json").unlink()  # no longer a complete archive folder
    export_static(archived, out)
    assert not (out / "2020-12").exists()
    assert not (out / "topics" / "efficacy-of-treatments").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("public", "project")]
    assert leftovers == []  # no staging folders left behind


def test_the_export_never_wipes_a_folder_of_other_files(archived: Settings, tmp_path: Path) -> None:
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(NewsletterError, match="holds other files"):
        export_static(archived, precious)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_the_archive_command_writes_the_site(archived: Settings, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(
        main, ["--project", str(archived.root), "archive", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3 issues" in result.output
    assert (out / "2021-01" / "index.html").is_file()
    default = CliRunner().invoke(main, ["--project", str(archived.root), "archive"])
    assert default.exit_code == 0, default.output
    assert (archived.build_dir / "archive" / "feed.xml").is_file()


def test_everything_from_an_archived_file_is_escaped(archived: Settings, site: TestClient) -> None:
    source = (archived.issues_dir / "2021-01.md").read_text()
    source = source.replace(
        "## Burnout Among Psychological Practitioners in the NHS",
        "## Burnout <script>alert(1)</script> & more",
    ).replace("subject: Therapist", "subject: <img src=x onerror=alert(1)> Therapist")
    archive_fixture(
        archived.root, "2021-02", source, subject="x", finished_at="2021-02-02T14:00:00+00:00"
    )
    for path in ("/archive/", "/archive/topics/therapist-factors/"):
        page = get(site, path).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<img src=x" not in get(site, "/archive/").text
    feed = ET.fromstring(get(site, "/archive/feed.xml").content)
    first = feed.find(f"{ATOM}entry")
    assert first is not None
    assert (first.findtext(f"{ATOM}title") or "").startswith(
        "<img src=x"
    )  # text, safely escaped in XML
    assert "<script>" not in (first.findtext(f"{ATOM}content") or "")


def test_a_broken_archived_file_is_left_out_and_the_rest_still_shown(
    archived: Settings, site: TestClient
) -> None:
    (archived.archive_dir / "2020-12" / "issue.md").write_text("not an issue at all")
    page = get(site, "/archive/")
    assert page.status_code == 200
    assert 'href="2021-01/"' in page.text and 'href="2020-11/"' in page.text
    assert 'href="2020-12/"' not in page.text


def test_an_issue_with_a_topic_since_removed_is_still_listed(
    archived: Settings, site: TestClient
) -> None:
    topics_file = archived.topics_file
    topics_file.write_text(topics_file.read_text().replace("- Attachment\n", ""))
    (archived.archive_dir / "2021-01" / "issue.md").touch()
    page = get(site, "/archive/topics/attachment/")
    assert page.status_code == 200
    assert "Mentalizing" in page.text


def test_a_real_send_appears_in_the_archive(settings: Settings) -> None:
    SubscriberStore(open_database(settings.database_url)).add("one@example.com")
    issue = read_issue(settings.issues_dir / "2021-01.md", load_topics(settings.topics_file))
    send_issue(settings, db(settings), issue, transport=MemoryTransport())
    with in_process(create_app(settings)) as server:
        listing = get(server, "/archive/")
        web_version = get(server, "/archive/2021-01/")
    assert escape(issue.subject) in listing.text
    assert web_version.status_code == 200
    assert "one@example.com" not in web_version.text
    assert "/unsubscribe/" not in web_version.text


def test_an_empty_archive_is_a_friendly_page_and_an_empty_feed(settings: Settings) -> None:
    with in_process(create_app(settings)) as server:
        assert "No issue has been sent yet" in get(server, "/archive/").text
        feed = ET.fromstring(get(server, "/archive/feed.xml").content)
    assert feed.findall(f"{ATOM}entry") == []


def test_the_web_commands_and_their_options_are_documented() -> None:
    from tests.conftest import REPO

    doc = (REPO / "docs" / "web.md").read_text(encoding="utf-8")
    deploy = (REPO / "docs" / "deploy-web.md").read_text(encoding="utf-8")
    for name in ("serve", "archive"):
        command = top_command(name)
        assert f"`newsletter {name}" in doc, name
        for parameter in command.params:
            for option in getattr(parameter, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in doc, f"{name} {option}"
    for needed in (
        "newsletter serve",
        "X-Forwarded-For",
        "[Service]",
        "proxy_pass",
        "FORWARDED_ALLOW_IPS",
    ):
        assert needed in deploy, needed


def test_an_unwritable_destination_is_a_one_line_error(archived: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        main, ["--project", str(archived.root), "archive", "--out", str(blocker / "site")]
    )
    assert result.exit_code == 1
    assert "cannot create the folder" in result.output
    assert "Traceback" not in result.output


def test_each_topic_has_an_atom_feed_of_its_articles_linked_from_its_page(
    archived: Settings, site: TestClient, tmp_path: Path
) -> None:
    page = get(site, "/archive/topics/therapist-factors/")
    assert 'href="feed.xml"' in page.text and "Atom feed of this topic" in page.text
    answer = get(site, "/archive/topics/therapist-factors/feed.xml")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(answer.content)
    base = archived.links.archive_url
    assert feed.findtext(f"{ATOM}id") == f"{base}/topics/therapist-factors/"
    assert feed.findtext(f"{ATOM}title") == "PPRNet Monthly: Therapist Factors"
    self_link = feed.find(f"{ATOM}link[@rel='self']")
    assert self_link is not None
    assert self_link.get("href") == f"{base}/topics/therapist-factors/feed.xml"
    assert feed.findtext(f"{ATOM}updated") == "2021-01-05T14:00:00Z"
    topics = load_topics(archived.topics_file)
    expected = [
        article.title
        for month in reversed(MONTHS)
        for article in read_issue(archived.issues_dir / f"{month}.md", topics).articles
        if "Therapist Factors" in article.topics
    ]
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == expected
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == len(ids)
    for entry in entries:
        labels = [c.get("label") for c in entry.findall(f"{ATOM}category")]
        assert "Therapist Factors" in labels
        assert "Practice Implications" in (entry.findtext(f"{ATOM}content") or "")
    assert get(site, "/archive/topics/no-such-topic/feed.xml").status_code == 404

    out = tmp_path / "public"
    export_static(archived, out)
    exported = out / "topics" / "therapist-factors" / "feed.xml"
    assert exported.read_bytes() == answer.content
    for slug_folder in (out / "topics").iterdir():
        if slug_folder.is_dir():
            assert (slug_folder / "feed.xml").is_file(), slug_folder
