"""The public archive: every sent issue, the articles on each topic, Atom feeds; served or exported.

Besides the feed of every issue (``feed.xml``), each topic has its own (``topics/SLUG/feed.xml``):
one entry per article on that topic, newest first.

The pages come from ``archive/YYYY-MM/`` (written by each send, see ``newsletter.archive``):
``issue.md`` gives the articles and topics, ``index.html`` is the web version as it was sent.
Links between archive pages are relative, so the same files work under ``/archive/`` of
``newsletter serve`` and on any static host (``newsletter archive --out DIR``).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from jinja2 import Environment

from newsletter import markdown
from newsletter.archive import RECORDS_DIR, ArchivedIssue, list_archived
from newsletter.config import Settings
from newsletter.doi.export import bibtex, highwire_tags, ris
from newsletter.doi.record import Record
from newsletter.doi.store import FOLDER, MetadataStore
from newsletter.errors import ConfigError, IssueError, NewsletterError
from newsletter.issues import load_topics, read_issue
from newsletter.models import Article, Issue
from newsletter.values.clock import aware
from newsletter.values.doi import doi_url
from newsletter.values.month import parse_month
from newsletter.values.topic import topic_slug
from newsletter.web.pages import render, template_environment

log = logging.getLogger("newsletter.web.archive")

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_FILE = "feed.xml"
_TOPICS_LINE_RE = re.compile(r"^\s*topics\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One sent issue as the archive shows it."""

    archived: ArchivedIssue
    issue: Issue

    @property
    def month(self) -> str:
        return self.archived.month

    @property
    def sent_at(self) -> datetime:
        when = self.archived.finished_at or self.archived.started_at
        if when is None:
            year, number = parse_month(self.month)
            return datetime(year, number, 1, tzinfo=UTC)
        return aware(when)

    @property
    def topics(self) -> list[str]:
        """The issue's topics, each once, in order of first appearance."""
        return list(
            dict.fromkeys(topic for article in self.issue.articles for topic in article.topics)
        )


def _vocabulary(settings: Settings) -> tuple[str, ...]:
    try:
        return load_topics(settings.topics_file)
    except ConfigError as err:
        log.warning("archive: %s; reading archived issues with their own topics", err)
        return ()


def _own_topics(source: str) -> list[str]:
    """The topic names an archived file uses (topics.yaml may have changed since it was sent)."""
    names: list[str] = []
    for match in _TOPICS_LINE_RE.finditer(source):
        names.extend(" ".join(name.split()) for name in match.group(1).split(";") if name.strip())
    return names


def read_archived_issue(archived: ArchivedIssue, vocabulary: Sequence[str]) -> Issue:
    """Parse ``issue.md`` of an archive folder (it is named for its month by the folder, not the file)."""
    source = archived.source_path.read_text(encoding="utf-8-sig")
    topics = [
        *vocabulary,
        *(
            name
            for name in _own_topics(source)
            if name.casefold() not in {v.casefold() for v in vocabulary}
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="newsletter-archive-") as folder:
        copy = Path(folder) / f"{archived.month}.md"
        copy.write_text(source, encoding="utf-8")
        issue = read_issue(copy, topics)
    return dataclasses.replace(issue, path=archived.source_path)


class ArchiveSite:
    """Builds the archive's pages from the archive folder; parsed issues are cached by file time."""

    def __init__(self, settings: Settings, templates: Environment | None = None) -> None:
        self.settings = settings
        self.templates = templates or template_environment(settings.templates_dir)
        self._cache: dict[Path, tuple[float, Entry]] = {}
        self._lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every readable sent issue, newest first."""
        vocabulary: tuple[str, ...] | None = None
        found: list[Entry] = []
        for archived in list_archived(self.settings.archive_dir):
            try:
                stamp = max(archived.source_path.stat().st_mtime, archived.folder.stat().st_mtime)
            except OSError:  # removed since it was listed
                continue
            with self._lock:
                cached = self._cache.get(archived.folder)
            if cached is not None and cached[0] == stamp:
                found.append(cached[1])
                continue
            if vocabulary is None:
                vocabulary = _vocabulary(self.settings)
            try:
                entry = Entry(archived, read_archived_issue(archived, vocabulary))
            except (IssueError, OSError, UnicodeDecodeError) as err:
                log.error("archive: %s cannot be shown: %s", archived.source_path, err)
                continue
            with self._lock:
                self._cache[archived.folder] = (stamp, entry)
            found.append(entry)
        return sorted(found, key=lambda entry: entry.month, reverse=True)

    def topics(
        self, entries: Sequence[Entry]
    ) -> dict[str, tuple[str, list[tuple[Entry, Article]]]]:
        """slug → (topic name, [(issue, article)] newest first) over all issues."""
        by_slug: dict[str, tuple[str, list[tuple[Entry, Article]]]] = {}
        for entry in entries:
            for article in entry.issue.articles:
                for topic in article.topics:
                    by_slug.setdefault(topic_slug(topic), (topic, []))[1].append((entry, article))
        return dict(sorted(by_slug.items(), key=lambda item: item[1][0].casefold()))

    # --- pages -----------------------------------------------------------------------------

    def _render(self, name: str, **values: Any) -> str:
        return render(self.templates, self.settings, f"web/{name}", noindex=False, **values)

    def index_page(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        return self._render("archive_index.html.j2", entries=entries, root="", slug=topic_slug)

    def topics_page(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        return self._render("archive_topics.html.j2", topics=self.topics(entries), root="../")

    def topic_page(self, slug: str, entries: Sequence[Entry] | None = None) -> str | None:
        entries = self.entries() if entries is None else entries
        found = self.topics(entries).get(slug)
        if found is None:
            return None
        topic, articles = found
        return self._render(
            "archive_topic.html.j2", topic=topic, articles=articles, root="../../", slug=topic_slug
        )

    def issue_file(self, month: str) -> Path | None:
        """The web version of one sent issue, as archived."""
        for entry in self.entries():
            if entry.month == month:
                return entry.archived.web_path
        return None

    def entry(self, month: str) -> Entry | None:
        return next((entry for entry in self.entries() if entry.month == month), None)

    def records(self, entry: Entry) -> list[Record]:
        """The DOI records of a sent issue's articles, in article order: the archive folder's
        copies (refreshed by ``doi watch``), else those in ``issues/.metadata/``."""
        kept = MetadataStore(entry.archived.folder / RECORDS_DIR)
        current = MetadataStore(self.settings.issues_dir / FOLDER)
        found = []
        for article in entry.issue.articles:
            if article.doi:
                record = kept.get(article.doi) or current.get(article.doi)
                if record is not None:
                    found.append(record)
        return found

    def issue_page(self, month: str) -> str | None:
        """The web version of one sent issue, with citation meta tags, reference downloads and a
        dated notice of each retraction or correction found after it was sent."""
        entry = self.entry(month)
        if entry is None:
            return None
        page = entry.archived.web_path.read_text(encoding="utf-8")
        records = self.records(entry)
        if not records:
            return page
        return with_references(page, entry.issue, records)

    def references(self, month: str, kind: str) -> str | None:
        """``references.ris`` or ``references.bib`` of one sent issue (None: no such issue)."""
        entry = self.entry(month)
        if entry is None:
            return None
        records = self.records(entry)
        return ris(records) if kind == "ris" else bibtex(records)

    def feed(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        return atom_feed(self.settings, entries)

    def topic_feed(self, slug: str, entries: Sequence[Entry] | None = None) -> str | None:
        """The Atom feed of one topic's articles, or None for an unknown topic."""
        entries = self.entries() if entries is None else entries
        found = self.topics(entries).get(slug)
        if found is None:
            return None
        topic, articles = found
        return topic_feed(self.settings, slug, topic, articles)


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
    _sub(feed, "subtitle", "Psychotherapy research for practice, once a month")
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
        number = entry.issue.articles.index(article) + 1
        item = _sub(feed, "entry")
        _sub(item, "id", f"{links.issue_url(entry.month)}#article-{number}")
        _sub(item, "title", article.title)
        _sub(item, "updated", _stamp(entry.sent_at))
        _sub(item, "published", _stamp(entry.sent_at))
        _sub(item, "link", rel="alternate", type="text/html", href=links.issue_url(entry.month))
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


# --- references and notices on an issue's page ---------------------------------------------------

RIS_FILE = "references.ris"
BIBTEX_FILE = "references.bib"
_NOTICE_STYLE = (
    "max-width: 600px; margin: 16px auto; padding: 10px 14px; border-left: 4px solid #b26a00; "
    "font: 15px/1.5 Helvetica, Arial, sans-serif; color: #1f2933; background: #fff;"
)


def with_references(page: str, issue: Issue, records: Sequence[Record]) -> str:
    """``page`` with Highwire meta tags and RIS/BibTeX links in its head, a notice for each
    update the page does not show yet (found after sending), and the download links at its end."""
    head = (
        highwire_tags(records)
        + f'\n<link rel="alternate" type="application/x-research-info-systems" href="{RIS_FILE}"'
        + ' title="References (RIS)">'
        + f'\n<link rel="alternate" type="application/x-bibtex" href="{BIBTEX_FILE}"'
        + ' title="References (BibTeX)">\n'
    )
    page = _insert_before(page, "</head>", head)
    titles = {(a.doi or "").lower(): a.title for a in issue.articles}
    notices = [
        f'<p class="nl-archive-notice" style="{_NOTICE_STYLE}"><strong>{html.escape(update.label)}'
        f"</strong> ({html.escape(update.date or 'undated')}) of “"
        f"{html.escape(titles.get(record.doi.lower(), record.title))}”: "
        f'<a href="{html.escape(doi_url(update.doi))}">read the notice</a></p>'
        for record in records
        for update in record.updates
        if doi_url(update.doi) not in page
    ]
    downloads = (
        f'<p class="nl-references" style="{_NOTICE_STYLE} border-left-color: #1d5a6e;">'
        f'Save this issue\'s references: <a href="{RIS_FILE}" download>RIS</a> · '
        f'<a href="{BIBTEX_FILE}" download>BibTeX</a></p>\n'
    )
    if notices:
        page = re.sub(
            r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + "\n".join(notices), page, count=1
        )
    return _insert_before(page, "</body>", downloads)


def _insert_before(page: str, marker: str, text: str) -> str:
    at = page.lower().rfind(marker)
    return page + text if at < 0 else page[:at] + text + page[at:]


# --- static export ---------------------------------------------------------------------------------


def _pages(site: ArchiveSite) -> Iterator[tuple[str, str | Path]]:
    """(relative path, text or file to copy) of every page of the archive."""
    entries = site.entries()
    yield "index.html", site.index_page(entries)
    yield FEED_FILE, site.feed(entries)
    yield "topics/index.html", site.topics_page(entries)
    for slug in site.topics(entries):
        page = site.topic_page(slug, entries)
        if page is not None:
            yield f"topics/{slug}/index.html", page
        feed = site.topic_feed(slug, entries)
        if feed is not None:
            yield f"topics/{slug}/{FEED_FILE}", feed
    for entry in entries:
        yield f"{entry.month}/index.html", site.issue_page(entry.month) or entry.archived.web_path
        if site.records(entry):
            yield f"{entry.month}/{RIS_FILE}", site.references(entry.month, "ris") or ""
            yield f"{entry.month}/{BIBTEX_FILE}", site.references(entry.month, "bib") or ""


def export_static(settings: Settings, out_dir: Path) -> list[Path]:
    """Write the archive as static files into ``out_dir``, replacing it whole only once all are written."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise NewsletterError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / FEED_FILE).is_file():
        # Only an earlier export is ever replaced: never wipe a folder of other files.
        raise NewsletterError(
            f"{out_dir}: this folder holds other files; give an empty or new folder for the archive"
        )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise NewsletterError(f"{out_dir}: cannot create the folder: {err}") from err
    written: list[Path] = []
    try:
        for relative, content in _pages(ArchiveSite(settings)):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content, encoding="utf-8")
            written.append(out_dir / relative)
        os.chmod(staging, 0o755)  # noqa: S103 - a public web folder (mkdtemp made it 0700)
        _swap_in(staging, out_dir)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise NewsletterError(f"{out_dir}: the archive could not be written: {err}") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` with ``staging``; the old folder is moved aside first, then removed."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    os.replace(out_dir, old / "site")
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)
