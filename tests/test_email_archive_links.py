"""The email's topic tags and subscribe link lead to pages the web app really serves."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from newsletter.config import Settings
from newsletter.issues import load_topics, read_issue
from newsletter.render import render_issue
from newsletter.web.app import create_app
from tests.webkit import archive_fixture, in_process


def test_topic_tags_and_subscribe_link_open_real_pages(settings: Settings) -> None:
    topics = load_topics(settings.topics_file)
    issue = read_issue(settings.issues_dir / "2021-01.md", topics)
    archive_fixture(
        settings.root,
        issue.month,
        issue.source,
        subject=issue.subject,
        finished_at="2021-01-05T14:00:00+00:00",
    )
    rendered = render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )
    hrefs = re.findall(r'href="([^"]+)"', rendered.html)
    topic_links = [
        href for href in hrefs if href.startswith(f"{settings.links.archive_url}/topics/")
    ]
    named = {topic for article in issue.articles for topic in article.topics}
    assert len(set(topic_links)) == len(named) > 0
    with in_process(create_app(settings)) as http:
        for href in [*set(topic_links), settings.links.subscribe_url]:
            page = http.get(urlsplit(href).path)
            assert page.status_code == 200, href
        first = http.get(urlsplit(settings.links.topic_url("Attachment")).path)
        assert "Mentalizing as a Buffer" in first.text
