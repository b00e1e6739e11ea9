"""The archive's Atom feeds (RFC 4287): every issue (``feed.xml``), and each topic's articles
(``topics/SLUG/feed.xml``), built as XML, never by string pasting."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from newsletter import markdown
from newsletter.config import Settings
from newsletter.models import Article
from newsletter.values.topic import topic_slug
from newsletter.web.entries import Entry

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_FILE = "feed.xml"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry_html(entry: Entry) -> str:
    items = "".join(
        f'<li><a href="{html.escape(article.url)}">{html.escape(article.title)}</a></li>'
        for article in entry.issue.articles
    )
    return markdown.to_html(entry.issue.intro) + f"<ul>{items}</ul>"


def atom_feed(settings: Settings, entries: Sequence[Entry]) -> str:
    """An Atom 1.0 document (RFC 4287) of the sent issues, newest first; built as XML, never by string pasting."""
    ET.register_namespace("", ATOM_NS)
    links = settings.links
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", f"{links.archive_url}/")
    _sub(feed, "title", settings.sender.name)
    _sub(feed, "subtitle", settings.site.feed_subtitle)
    _sub(feed, "updated", _stamp(max((entry.sent_at for entry in entries), default=_EPOCH)))
    _sub(
        feed,
        "link",
        rel="self",
        type="application/atom+xml",
        href=f"{links.archive_url}/{FEED_FILE}",
    )
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{links.archive_url}/")
    author = _sub(feed, "author")
    _sub(author, "name", settings.sender.name)
    for entry in entries:
        item = _sub(feed, "entry")
        _sub(item, "id", links.issue_url(entry.month))
        _sub(item, "title", entry.issue.subject)
        _sub(item, "updated", _stamp(entry.sent_at))
        _sub(item, "published", _stamp(entry.sent_at))
        _sub(item, "link", rel="alternate", type="text/html", href=links.issue_url(entry.month))
        if entry.issue.preheader:
            _sub(item, "summary", entry.issue.preheader)
        _sub(item, "content", _entry_html(entry), type="html")
        for topic in entry.topics:
            _sub(item, "category", term=topic_slug(topic), label=topic)
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def topic_feed(
    settings: Settings, slug: str, topic: str, articles: Sequence[tuple[Entry, Article]]
) -> str:
    """An Atom 1.0 document of the articles on one topic (newest issue first), one entry each."""
    ET.register_namespace("", ATOM_NS)
    links = settings.links
    home = f"{links.archive_url}/topics/{slug}/"
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", home)
    _sub(feed, "title", f"{settings.sender.name}: {topic}")
    _sub(feed, "subtitle", f"Research summaries on {topic}, as each issue is sent")
    _sub(feed, "updated", _stamp(max((e.sent_at for e, _ in articles), default=_EPOCH)))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=home + FEED_FILE)
    _sub(feed, "link", rel="alternate", type="text/html", href=home)
    author = _sub(feed, "author")
    _sub(author, "name", settings.sender.name)
    for entry, article in articles:
        where = f"{links.issue_url(entry.month)}#{entry.anchor(article)}"
        item = _sub(feed, "entry")
        _sub(item, "id", where)
        _sub(item, "title", article.title)
        _sub(item, "updated", _stamp(entry.sent_at))
        _sub(item, "published", _stamp(entry.sent_at))
        _sub(item, "link", rel="alternate", type="text/html", href=where)
        if article.url:
            _sub(item, "link", rel="related", type="text/html", href=article.url)
        body = (
            f"<p>{markdown.inline_to_html(article.citation)}</p>"
            + markdown.to_html(article.summary)
            + "<h3>Practice Implications</h3>"
            + markdown.to_html(article.implications)
        )
        _sub(item, "content", body, type="html")
        for other in article.topics:
            _sub(item, "category", term=topic_slug(other), label=other)
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"
