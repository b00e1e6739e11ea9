"""``newsletter preview``: a local page that shows an issue's email as it is being written.

A small stdlib HTTP server on 127.0.0.1. The page (``preview_page``) shows the email in a
desktop-wide and a phone-wide frame, the plain text, and a side panel with the subject, the
status (draft or ready), every check finding with its code and a variant picker.

Keeping up with saves (``preview_live``): a watcher thread stats the issue file, the topics file
and every template every ``WATCH_S``; on a change it publishes a new version number, which
``/events`` pushes to every open page as a server-sent event, and renders the default variant
once while the pages ask for it. The page then reloads its two frames and refreshes its panel
from ``/panel.json``: no page reload, no polling. A reconnecting page sends ``Last-Event-ID``
and is told the current version only when it missed one. Every request also checks the files,
so an answer is never older than the files on disk. Each variant is rendered once per version,
whatever the number of pages asking. A broken file shows its findings on the page; the server
keeps answering.

Any variant of the issue can be shown (``newsletter/variants.py``): ``?topic=…&mode=only`` (a
reader's topics and mode) or ``?variant=2*,1`` (a key, as ``send --dry-run`` and ``report`` list
them) on the page and its frames.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from newsletter.checks import check_rendered, merge_findings
from newsletter.config import Links, Sender
from newsletter.doi.compare import check_issue_dois
from newsletter.doi.store import FOLDER as METADATA_FOLDER
from newsletter.doi.store import MetadataStore
from newsletter.errors import NewsletterError
from newsletter.issues import MAX_BYTES, lint_issue, load_topics
from newsletter.issues.common import Report
from newsletter.issues.frontmatter import parse_front_matter, split_front_matter
from newsletter.models import Finding, Issue, TopicMode, personalise
from newsletter.render import render_issue
from newsletter.render.files import sample_recipient
from newsletter.variants import SKIP, Variant, Variants
from newsletter.web import preview_page
from newsletter.web.entries import issue_topics
from newsletter.web.preview_live import Broadcast, Version, Versions, WatchedFiles

HOST = "127.0.0.1"
WATCH_S = 0.05  # how often the watcher stats the files: a save shows up within this
KEEPALIVE_S = 15.0  # a comment line this often on an idle stream finds clients that went away
RETRY_MS = 500  # how soon a page's EventSource reconnects after losing the server
MAX_STATES = 64  # renderings kept for the current version (one per variant asked for)


@dataclass(frozen=True)
class PreviewSource:
    """What the preview watches and renders with."""

    issue_path: Path
    topics_file: Path
    templates_dir: Path
    sender: Sender
    links: Links
    display_path: str
    lang: str = "en"  # the email's <html lang> (``site.lang``)


@dataclass(frozen=True)
class Choice:
    """Which variant to show: a reader's topics and mode, or a variant key (wins when given)."""

    topics: tuple[str, ...] = ()
    mode: TopicMode = TopicMode.ALL
    key: str | None = None

    @classmethod
    def from_query(cls, query: str) -> Choice:
        found = parse_qs(query)
        topics = tuple(t for raw in found.get("topic", ()) for t in raw.split(";") if t.strip())
        mode = TopicMode.ONLY if found.get("mode", [""])[0] == "only" else TopicMode.ALL
        key = found.get("variant", [None])[0]
        return cls(topics, mode, key.strip() if key and key.strip() else None)

    @property
    def query(self) -> str:
        """The query string that names this choice (empty for the default)."""
        pairs: list[tuple[str, str]] = [("topic", topic) for topic in self.topics]
        if self.mode is TopicMode.ONLY:
            pairs.append(("mode", "only"))
        if self.key is not None:
            pairs.append(("variant", self.key))
        return urlencode(pairs)

    def variant(self, issue: Issue) -> Variant | None:
        """The variant chosen (None: the default); ``ValueError`` for a bad key."""
        if self.key is not None:
            return Variant.parse(self.key, len(issue.articles))
        if not self.topics:
            return None
        variants = Variants(issue)
        return variants.variant(variants.key_for(self.topics, self.mode))


@dataclass(frozen=True)
class PreviewState:
    """One rendering of the watched files, identified by their version number."""

    version: int
    findings: tuple[Finding, ...] = ()
    subject: str = ""  # from the front matter, even while the body has errors
    preheader: str = ""
    status: str = ""  # "draft" or "ready" ("" when the front matter cannot be read)
    html: str | None = None  # placeholders filled with a sample reader's links
    text: str | None = None
    error: str | None = None  # a failure that is not a finding (templates, topics file)
    choice: Choice = Choice()
    issue_topics: tuple[str, ...] = ()  # the topics of the issue's articles, for the picker
    variant: str = ""  # the key shown (the default's too)
    variants: tuple[tuple[str, str], ...] = ()  # (key, label) the picker offers

    @property
    def errors(self) -> int:
        return sum(finding.is_error for finding in self.findings) + (self.error is not None)


class Previewer:
    """Renders the issue again when the watched files change: once per version and variant."""

    def __init__(self, source: PreviewSource) -> None:
        self.source = source
        # The DOI records too: `newsletter doi refresh` changes notices and free full text links.
        records = source.issue_path.parent / METADATA_FOLDER
        files = WatchedFiles(
            [source.issue_path, source.topics_file], [source.templates_dir, records]
        )
        self.versions = Versions(files)
        self._lock = threading.Lock()
        self._states: dict[Choice, PreviewState] = {}  # of the current version only

    def state(self, choice: Choice | None = None) -> PreviewState:
        """The rendering of the variant ``choice`` for the files as they are now."""
        choice = choice or Choice()
        with self._lock:  # one render at a time: two pages asking at once share it
            version = self.versions.refresh()  # inside: never label a newer render as older
            found = self._states.get(choice)
            if found is None or found.version != version.number:
                if any(state.version != version.number for state in self._states.values()):
                    self._states.clear()
                if len(self._states) >= MAX_STATES:
                    self._states.clear()
                found = self._states[choice] = self._render(version.number, choice)
            return found

    def _render(self, version: int, choice: Choice) -> PreviewState:
        source = self.source
        front = front_matter(source.issue_path)  # shown even when the body has errors
        base = PreviewState(
            version,
            choice=choice,
            subject=front.get("subject", ""),
            preheader=front.get("preheader", ""),
            status=front.get("status", ""),
        )
        try:
            topics = load_topics(source.topics_file)
            issue, findings = lint_issue(
                source.issue_path, topics, display_path=source.display_path
            )
            if issue is None:
                return replace(base, findings=findings)
            base = replace(
                base,
                issue_topics=tuple(issue_topics(issue)),
                variants=variant_choices(issue),
            )
            try:
                variant = choice.variant(issue)
            except ValueError as err:
                return replace(base, error=str(err))
            if variant is not None and variant.key == SKIP:
                why = "a reader with these topics who reads only them is not sent this issue"
                return replace(base, error=why)
            rendered = render_issue(
                issue,
                templates_dir=source.templates_dir,
                sender=source.sender,
                links=source.links,
                variant=variant,
                lang=source.lang,
            )
        except NewsletterError as err:
            return replace(base, error=str(err))
        values = sample_recipient(source.sender, source.links).substitutions
        checks = merge_findings(findings, check_rendered(rendered, path=source.display_path))
        store = MetadataStore.beside(source.issue_path)  # the stored records only: no network
        dois = tuple(check_issue_dois(issue, store, path=source.display_path).findings)
        return replace(
            base,
            findings=(*checks, *dois),  # as `check` lists them: no duplicates
            subject=rendered.subject,
            preheader=rendered.preheader,
            status=issue.status.value,
            html=personalise(rendered.html, values),
            text=personalise(rendered.text, values),
            variant=variant.key if variant is not None else Variants(issue).default,
        )


def front_matter(path: Path) -> dict[str, str]:
    """Subject, preheader and status as the front matter gives them, errors or not."""
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_BYTES).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    lines = text.replace("\r\n", "\n").split("\n")
    report = Report("-")  # the findings come from lint_issue; these would be its duplicates
    opening, front_lines, _ = split_front_matter(lines, report)
    if front_lines is None:
        return {}
    values = parse_front_matter(front_lines, opening, report).values
    found = {name: values.get(name) for name in ("subject", "preheader", "status")}
    return {name: str(value) for name, value in found.items() if value}


def variant_choices(issue: Issue, most_topics: int = 6) -> tuple[tuple[str, str], ...]:
    """Every variant a reader's topics can give (key, label), the default first.

    Each subset of the issue's topics in each mode, when there are at most ``most_topics``
    topics (else each topic alone); a key is labelled by the first choice that gives it.
    """
    variants = Variants(issue)
    topics = issue_topics(issue)
    found: dict[str, str] = {variants.default: "a reader without topics: every article"}
    subsets = _subsets(topics) if len(topics) <= most_topics else [[t] for t in topics]
    for subset in subsets:
        for mode, how in ((TopicMode.ALL, "theirs first"), (TopicMode.ONLY, "only theirs")):
            key = variants.key_for(subset, mode)
            if key != SKIP and key not in found:
                found[key] = f"{' + '.join(subset)}: {how}"
    return tuple(found.items())


def _subsets(items: list[str]) -> list[list[str]]:
    """Every non-empty subset, the smaller first, each in the items' order."""
    every = [
        [item for bit, item in enumerate(items) if mask >> bit & 1]
        for mask in range(1, 1 << len(items))
    ]
    return sorted(every, key=len)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if not self._host_is_local():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "text/plain", "ask 127.0.0.1 by its name")
            return
        try:
            self._route(parts.path, Choice.from_query(parts.query))
        except ConnectionError:
            pass  # the page went away (a closed tab's event stream, mostly)
        except Exception as err:  # never let one bad request stop the author's preview
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", f"preview failed: {err}")

    def _host_is_local(self) -> bool:
        """A page on another site that resolves its name to 127.0.0.1 must not read drafts."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1")

    def _route(self, route: str, choice: Choice) -> None:
        previewer = self.server.previewer
        if route == "/events":
            self._stream_events()
            return
        if route == "/version":  # the files' version only: never waits for a render
            version = previewer.versions.refresh()
            body = json.dumps({"version": version.number, "fingerprint": version.fingerprint})
            self._send(HTTPStatus.OK, "application/json", body)
            return
        if route in preview_page.ASSETS:
            content_type, body = preview_page.ASSETS[route]
            self._send(HTTPStatus.OK, content_type, body)
            return
        if route not in ("/", "/email.html", "/email.txt", "/findings.json", "/panel.json"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", "not found")
            return
        state = previewer.state(choice)
        if route == "/":
            page = preview_page.page(previewer.source.display_path, state)
            self._send(HTTPStatus.OK, "text/html", page, preview_page.PAGE_CSP)
        elif route == "/email.html":
            email = state.html or preview_page.placeholder_page(state)
            self._send(HTTPStatus.OK, "text/html", email, preview_page.EMAIL_CSP)
        elif route == "/email.txt":
            self._send(HTTPStatus.OK, "text/plain", state.text or "(no text: see the errors)")
        elif route == "/panel.json":
            self._send(HTTPStatus.OK, "application/json", json.dumps(preview_page.panel(state)))
        else:
            self._send(HTTPStatus.OK, "application/json", _findings_json(state))

    def _stream_events(self) -> None:
        """Server-sent events: the current version now (unless the page has it), then each new one."""
        broadcast = self.server.broadcast
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
        sent = broadcast.published
        if self.headers.get("Last-Event-ID", "").strip() != str(sent.number):
            self.wfile.write(_event(sent))
        while not broadcast.closed:
            version = broadcast.wait_past(sent.number, KEEPALIVE_S)
            if version is None:
                if not broadcast.closed:
                    self.wfile.write(b": still here\n\n")
                continue
            self.wfile.write(_event(version))
            sent = version

    def _send(
        self, status: HTTPStatus, content_type: str, body: str, policy: str | None = None
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if policy is not None:
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every save brings a handful of requests that would flood the terminal."""


def _event(version: Version) -> bytes:
    data = json.dumps({"version": version.number})
    return f"id: {version.number}\nevent: version\ndata: {data}\n\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream never keeps the process alive
    previewer: Previewer
    broadcast: Broadcast


class PreviewServer:
    """The preview on ``127.0.0.1:port`` (0 picks a free port); ``start()`` runs it in a thread."""

    def __init__(self, source: PreviewSource, *, port: int = 0) -> None:
        self._server = _Server((HOST, port), _Handler)
        self.previewer = self._server.previewer = Previewer(source)
        self._server.broadcast = Broadcast(self.previewer.versions.current)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def serve_forever(self) -> None:
        """Answer requests (and watch the files) until ``close()`` or Ctrl-C."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="preview-watch", daemon=True)
            self._watcher.start()
        self._server.serve_forever(poll_interval=0.2)

    def _watch(self) -> None:
        """Each new version: tell the pages, and render the default variant while they ask.

        The pages' requests wait for this one render (``Previewer.state`` renders one at a
        time and keeps the result), so telling them first overlaps their round trip with it.
        """
        broadcast = self._server.broadcast
        while not self._stop.wait(WATCH_S):
            version = self.previewer.versions.refresh()
            if version.number != broadcast.published.number:
                broadcast.publish(version)
                self.previewer.state()

    def start(self) -> PreviewServer:
        self._thread = threading.Thread(target=self.serve_forever, name="preview", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop: end every event stream, the watcher and the server."""
        self._stop.set()
        self._server.broadcast.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _findings_json(state: PreviewState) -> str:
    return json.dumps(
        {
            "version": state.version,
            "status": state.status or None,
            "subject": state.subject or None,
            "error": state.error,
            "findings": [preview_page.finding_json(finding) for finding in state.findings],
        }
    )
