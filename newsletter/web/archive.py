"""The public archive: every sent issue, the articles on each topic, Atom feeds; served or exported.

Besides the feed of every issue (``feed.xml``), each topic has its own (``topics/SLUG/feed.xml``):
one entry per article on that topic, newest first.

The pieces: ``entries`` (reading the archive folder), ``feeds`` (Atom), ``search``; this module
puts the pages together and writes the static export.

The pages come from ``archive/YYYY-MM/`` (written by each send, see ``newsletter.archive``):
``issue.md`` gives the articles and topics, and each issue's page is built from it with
``templates/web/archive_issue.html.j2`` (a web page, not the email: no unsubscribe footer, an
anchor ``#article-N`` per article). ``index.html`` there, the email as sent, only tells which
DOI notices readers already saw. Links between archive pages are relative, so the same files
work under ``/archive/`` of ``newsletter serve`` and on any static host (``newsletter archive
--out DIR``), where ``search/`` runs ``search.js`` over ``search/index.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from newsletter.archive import RECORDS_DIR, list_archived
from newsletter.config import Settings
from newsletter.doi.export import bibtex, highwire_tags, ris
from newsletter.doi.record import Record
from newsletter.doi.store import FOLDER, MetadataStore
from newsletter.errors import ConfigError, IssueError, NewsletterError
from newsletter.models import Article, Issue
from newsletter.render.jinja import month_name
from newsletter.values.doi import doi_url
from newsletter.values.topic import topic_slug
from newsletter.web.entries import Entry, read_archived_issue, vocabulary_of
from newsletter.web.feeds import FEED_FILE, atom_feed, topic_feed
from newsletter.web.pages import STATIC_FILES, render, template_environment
from newsletter.web.search import QUERY_MAX, Document, index_json, search

__all__ = ["ARCHIVE_CSP", "ArchiveSite", "Entry", "export_static", "topic_slug"]

log = logging.getLogger("newsletter.web.archive")

SEARCH_SCRIPT = STATIC_FILES[0]  # under templates/; copied as is, never rendered
DESCRIPTION_MAX = 300
# Archive pages carry this as a <meta> too, so a static host without CSP headers still runs no
# script but search.js (same origin) and lets it fetch nothing but same-origin files.
ARCHIVE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' https: data:; form-action 'self'; base-uri 'none'"
)


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
                vocabulary = vocabulary_of(self.settings)
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

    # --- pages ---------------------------------------------------------------------------

    def _render(self, name: str, *, noindex: bool = False, **values: Any) -> str:
        return render(
            self.templates,
            self.settings,
            f"web/{name}",
            noindex=noindex,
            site_heading="p",
            page_csp=ARCHIVE_CSP,
            **values,
        )

    def _meta(self, path: str, title: str, description: str = "") -> dict[str, Any]:
        """Canonical address and Open Graph values of the page at ``archive_url/path``."""
        return {
            "canonical": f"{self.settings.links.archive_url}/{path}",
            "og_title": title,
            "description": _clip(description or self.settings.site.description),
        }

    def index_page(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        meta = self._meta("", f"{self.settings.sender.name}: past issues")
        return self._render(
            "archive_index.html.j2", entries=entries, root="", slug=topic_slug, **meta
        )

    def topics_page(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        meta = self._meta("topics/", f"{self.settings.sender.name}: topics")
        return self._render(
            "archive_topics.html.j2", topics=self.topics(entries), root="../", **meta
        )

    def _topic(
        self, slug: str, entries: Sequence[Entry] | None
    ) -> tuple[str, list[tuple[Entry, Article]]] | None:
        """(topic name, its articles) of ``slug``, or None for an unknown topic."""
        entries = self.entries() if entries is None else entries
        return self.topics(entries).get(slug)

    def topic_page(self, slug: str, entries: Sequence[Entry] | None = None) -> str | None:
        found = self._topic(slug, entries)
        if found is None:
            return None
        topic, articles = found
        meta = self._meta(
            f"topics/{slug}/",
            f"{topic} · {self.settings.sender.name}",
            f"Research on {topic}, summarised with its practice implications: "
            f"{len(articles)} article{'' if len(articles) == 1 else 's'}.",
        )
        return self._render(
            "archive_topic.html.j2",
            topic=topic,
            articles=articles,
            root="../../",
            slug=topic_slug,
            **meta,
        )

    def search_documents(self, entries: Sequence[Entry]) -> list[Document]:
        """Every article of every issue as search sees it, newest issue first."""
        return [doc for entry in entries for doc in entry.documents]

    def search_page(
        self, query: str = "", *, static: bool = False, entries: Sequence[Entry] | None = None
    ) -> str:
        """The search page: with ``static``, the page ``search.js`` fills in; else the server's
        results for ``query``."""
        entries = self.entries() if entries is None else entries
        query = "" if static else query[:QUERY_MAX]
        results = search(self.search_documents(entries), query) if query else []
        return self._render(
            "archive_search.html.j2",
            noindex=bool(query),  # a page of results is not a page for search engines
            query=query,
            results=results,
            static=static,
            root="../",
            **self._meta("search/", f"Search · {self.settings.sender.name}"),
        )

    def search_index(self, entries: Sequence[Entry] | None = None) -> str:
        entries = self.entries() if entries is None else entries
        return index_json(self.search_documents(entries))

    def search_script(self) -> str:
        """``search.js`` of the static export (a file of templates/web/, not a template)."""
        path = self.settings.templates_dir / SEARCH_SCRIPT
        try:
            return path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{path}: cannot be read: {err}") from err

    def entry(self, month: str, entries: Sequence[Entry] | None = None) -> Entry | None:
        entries = self.entries() if entries is None else entries
        return next((entry for entry in entries if entry.month == month), None)

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

    def issue_page(self, month: str, entries: Sequence[Entry] | None = None) -> str | None:
        """One sent issue as a web page: every article with an anchor, citation meta tags,
        reference downloads, free full text links, and each retraction or correction notice
        (those found after sending also at the top of the page)."""
        entry = self.entry(month, entries)
        if entry is None:
            return None
        records = self.records(entry)
        by_doi = {record.doi.lower(): record for record in records}
        articles = [
            {
                "article": article,
                "anchor": entry.anchor(article),
                "record": by_doi.get((article.doi or "").lower()),
            }
            for article in entry.issue.articles
        ]
        return self._render(
            "archive_issue.html.j2",
            entry=entry,
            issue=entry.issue,
            articles=articles,
            month_label=month_name(month),
            published=entry.sent_at.isoformat(),
            references=bool(records),
            highwire=Markup(highwire_tags(records)),  # noqa: S704 - every value escaped in export.py
            late_notices=late_notices(entry, records),
            root="../",
            slug=topic_slug,
            og_type="article",
            **self._meta(f"{month}/", entry.issue.subject, issue_description(entry.issue)),
        )

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
        found = self._topic(slug, entries)
        if found is None:
            return None
        topic, articles = found
        return topic_feed(self.settings, slug, topic, articles)


# --- an issue's description and notices ---------------------------------------------------------

RIS_FILE = "references.ris"
BIBTEX_FILE = "references.bib"


def _clip(text: str, limit: int = DESCRIPTION_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def issue_description(issue: Issue) -> str:
    """The meta description of an issue's page: its preheader, else its articles' titles."""
    if issue.preheader:
        return issue.preheader
    titles = "; ".join(article.title for article in issue.articles)
    return f"This month: {titles}" if titles else issue.subject


@dataclass(frozen=True)
class LateNotice:
    """A retraction or correction of an article, published after the issue was sent."""

    label: str
    date: str | None
    title: str
    url: str
    anchor: str


def late_notices(entry: Entry, records: Sequence[Record]) -> list[LateNotice]:
    """The notices the email as sent did not show (``doi watch`` found them since)."""
    try:
        sent = entry.archived.web_path.read_text(encoding="utf-8")
    except OSError:
        sent = ""
    by_doi = {(a.doi or "").lower(): a for a in entry.issue.articles}
    found = []
    for record in records:
        article = by_doi.get(record.doi.lower())
        for update in record.updates:
            url = doi_url(update.doi)
            if url not in sent:
                found.append(
                    LateNotice(
                        label=update.label,
                        date=update.date,
                        title=article.title if article else record.title,
                        url=url,
                        anchor=entry.anchor(article) if article else "",
                    )
                )
    return found


# --- static export ---------------------------------------------------------------------------------


def _pages(site: ArchiveSite) -> Iterator[tuple[str, str]]:
    """(relative path, text) of every file of the archive."""
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
    yield "search/index.html", site.search_page(static=True, entries=entries)
    yield "search/index.json", site.search_index(entries)
    yield "search/search.js", site.search_script()
    for entry in entries:
        page = site.issue_page(entry.month, entries)
        if page is not None:
            yield f"{entry.month}/index.html", page
        records = site.records(entry)
        if records:
            yield f"{entry.month}/{RIS_FILE}", ris(records)
            yield f"{entry.month}/{BIBTEX_FILE}", bibtex(records)


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
