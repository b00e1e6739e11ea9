"""``newsletter preview``: a local page that shows an issue's email as it is being written.

A small stdlib HTTP server on 127.0.0.1. The page shows the email in a desktop-wide and a
phone-wide frame, the plain text and the check findings, and polls ``/version`` (a hash of the
issue file, the topics file and every template) to reload itself within half a second of a save;
the page it reloads renders the files again.
A broken file shows its findings on the page; the server keeps answering.

Any variant of the issue can be shown (``newsletter/variants.py``): the page has a topic picker
(the issue's topics and a mode), which adds ``?topic=…&mode=only`` to the page and its frames;
``?variant=2*,1`` names a variant by its key, as ``send --dry-run`` and ``report`` list them.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from newsletter.checks import check_rendered
from newsletter.config import Links, Sender
from newsletter.doi.compare import check_issue_dois
from newsletter.doi.store import MetadataStore
from newsletter.errors import NewsletterError
from newsletter.issues import lint_issue, load_topics
from newsletter.models import Finding, Issue, TopicMode, personalise
from newsletter.render import render_issue
from newsletter.render.files import sample_recipient
from newsletter.variants import SKIP, Variant, Variants

POLL_MS = 400
HOST = "127.0.0.1"
_SLOT = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class PreviewSource:
    """What the preview watches and renders with."""

    issue_path: Path
    topics_file: Path
    templates_dir: Path
    sender: Sender
    links: Links
    display_path: str


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
    """One rendering of the watched files, identified by their fingerprint."""

    version: str
    findings: tuple[Finding, ...] = ()
    subject: str = ""
    preheader: str = ""
    html: str | None = None  # placeholders filled with a sample reader's links
    text: str | None = None
    error: str | None = None  # a failure that is not a finding (templates, topics file)
    choice: Choice = Choice()
    issue_topics: tuple[str, ...] = ()  # the topics of the issue's articles, for the picker
    variant: str = ""  # the key shown (the default's too)

    @property
    def errors(self) -> int:
        return sum(finding.is_error for finding in self.findings) + (self.error is not None)


class Previewer:
    """Renders the issue again whenever the fingerprint of the watched files changes."""

    def __init__(self, source: PreviewSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._states: dict[Choice, PreviewState] = {}  # of the current version only

    def fingerprint(self) -> str:
        """A hash of the contents of every watched file (content, not mtime: no missed saves)."""
        digest = hashlib.blake2b(digest_size=12)
        files = [self.source.issue_path, self.source.topics_file]
        files += sorted(p for p in self.source.templates_dir.rglob("*") if p.is_file())
        for path in files:
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing\0")
        return digest.hexdigest()

    def state(self, choice: Choice | None = None) -> PreviewState:
        """The current rendering (of the variant ``choice``), redone if a watched file changed."""
        version = self.fingerprint()
        choice = choice or Choice()
        with self._lock:
            found = self._states.get(choice)
            if found is None or found.version != version:
                if found is None and len(self._states) > 64:
                    self._states.clear()
                found = self._states[choice] = self._render(version, choice)
            return found

    def _render(self, version: str, choice: Choice | None = None) -> PreviewState:
        choice = choice or Choice()
        source = self.source
        try:
            topics = load_topics(source.topics_file)
            issue, findings = lint_issue(
                source.issue_path, topics, display_path=source.display_path
            )
            if issue is None:
                return PreviewState(version, findings=findings, choice=choice)
            picker = tuple(dict.fromkeys(t for a in issue.articles for t in a.topics))
            try:
                variant = choice.variant(issue)
            except ValueError as err:
                return PreviewState(version, error=str(err), choice=choice, issue_topics=picker)
            if variant is not None and variant.key == SKIP:
                why = "a reader with these topics who reads only them is not sent this issue"
                return PreviewState(version, error=why, choice=choice, issue_topics=picker)
            rendered = render_issue(
                issue,
                templates_dir=source.templates_dir,
                sender=source.sender,
                links=source.links,
                variant=variant,
            )
        except NewsletterError as err:
            return PreviewState(version, error=str(err), choice=choice)
        values = sample_recipient(source.sender, source.links).substitutions
        checks = tuple(check_rendered(rendered, path=source.display_path))
        store = MetadataStore.beside(source.issue_path)  # the stored records only: no network
        dois = tuple(check_issue_dois(issue, store, path=source.display_path).findings)
        return PreviewState(
            version,
            findings=(*findings, *checks, *dois),
            subject=rendered.subject,
            preheader=rendered.preheader,
            html=personalise(rendered.html, values),
            text=personalise(rendered.text, values),
            choice=choice,
            issue_topics=picker,
            variant=variant.key if variant is not None else Variants(issue).default,
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        try:
            self._route(parts.path, Choice.from_query(parts.query))
        except Exception as err:  # never let one bad request stop the author's preview
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", f"preview failed: {err}")

    def _route(self, route: str, choice: Choice) -> None:
        previewer = self.server.previewer
        if route == "/version":  # the files' hash only: the signal never waits for a render
            body = json.dumps({"version": previewer.fingerprint()})
            self._send(HTTPStatus.OK, "application/json", body)
            return
        if route not in ("/", "/email.html", "/email.txt", "/findings.json"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", "not found")
            return
        state = previewer.state(choice)
        if route == "/":
            self._send(HTTPStatus.OK, "text/html", page(previewer.source, state))
        elif route == "/email.html":
            self._send(HTTPStatus.OK, "text/html", state.html or _placeholder_page())
        elif route == "/email.txt":
            self._send(HTTPStatus.OK, "text/plain", state.text or "(no text: see the errors)")
        else:
            self._send(HTTPStatus.OK, "application/json", _findings_json(state))

    def _send(self, status: HTTPStatus, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the poll every 400 ms would flood the author's terminal."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    previewer: Previewer


class PreviewServer:
    """The preview on ``127.0.0.1:port`` (0 picks a free port); ``start()`` runs it in a thread."""

    def __init__(self, source: PreviewSource, *, port: int = 0) -> None:
        self._server = _Server((HOST, port), _Handler)
        self._server.previewer = Previewer(source)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> PreviewServer:
        self._thread = threading.Thread(target=self.serve_forever, name="preview", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _findings_json(state: PreviewState) -> str:
    return json.dumps(
        {
            "version": state.version,
            "error": state.error,
            "findings": [str(finding) for finding in state.findings],
        }
    )


def _placeholder_page() -> str:
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>No email</title>'
        '<body style="font-family:sans-serif;padding:1em">'
        "<p>The issue has errors, so there is no email to show. See the findings above.</p>"
    )


def page(source: PreviewSource, state: PreviewState) -> str:
    """The preview page; every value in it is HTML-escaped."""
    esc = html.escape
    values = {
        "title": esc(source.display_path),
        "subject": esc(state.subject or "—"),
        "preheader": esc(state.preheader or "—"),
        "summary": esc(_summary(state)),
        "status_class": "bad" if state.errors else "good",
        "findings": _findings_html(state),
        "email": _email_html(state),
        "picker": _picker_html(state),
        "version": esc(state.version),
        "version_json": json.dumps(state.version),
        "poll_ms": str(POLL_MS),
    }
    # one pass, so a value that happens to contain "{{text}}" is never expanded itself
    return _SLOT.sub(lambda match: values[match.group(1)], PAGE)


def _email_html(state: PreviewState) -> str:
    """The two frames and the plain text; nothing to frame while the issue has errors."""
    if state.html is None or state.text is None:
        return (
            '<p class="none">Fix the errors above to see the email; this page reloads itself.</p>'
        )
    version = html.escape(state.version)
    extra = html.escape(f"&{state.choice.query}" if state.choice.query else "")
    return (
        _FRAMES.replace("{{version}}", version + extra)
        .replace("{{text}}", html.escape(state.text))
        .replace("{{variant}}", html.escape(state.variant))
    )


def _picker_html(state: PreviewState) -> str:
    """A form that shows the email a reader of some topics gets (a GET of this page)."""
    esc = html.escape
    chosen = set(state.choice.topics)
    boxes = "".join(
        f'<label><input type="checkbox" name="topic" value="{esc(t)}"'
        f"{' checked' if t in chosen else ''}> {esc(t)}</label> "
        for t in state.issue_topics
    )
    only = state.choice.mode is TopicMode.ONLY
    return (
        '<form class="picker" method="get" action="/"><fieldset><legend>Show the email of a '
        f"reader who follows</legend>{boxes}<br>"
        f'<label><input type="radio" name="mode" value="all"{"" if only else " checked"}> '
        "every article, theirs first</label> "
        f'<label><input type="radio" name="mode" value="only"{" checked" if only else ""}> '
        "only their topics</label> "
        f'<label>or variant <input type="text" name="variant" size="10" '
        f'value="{esc(state.choice.key or "")}"></label> '
        '<button type="submit">Show</button> <a href="/">default</a></fieldset></form>'
    )


def _summary(state: PreviewState) -> str:
    errors = state.errors
    warnings = sum(not finding.is_error for finding in state.findings)
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"


def _findings_html(state: PreviewState) -> str:
    items = []
    if state.error:
        items.append(f'<li class="error">{html.escape(state.error)}</li>')
    for finding in state.findings:
        kind = "error" if finding.is_error else "warning"
        items.append(f'<li class="{kind}">{html.escape(str(finding))}</li>')
    if not items:
        return '<p class="none">No findings: the issue and its email pass every check.</p>'
    return '<ul class="findings">' + "".join(items) + "</ul>"


_FRAMES = """<p id="variant">Variant: <code>{{variant}}</code></p>
<section class="frames" aria-label="The HTML email">
  <figure class="desktop"><figcaption>Desktop, 700 px</figcaption>
    <iframe src="/email.html?v={{version}}" title="The email at desktop width"></iframe></figure>
  <figure class="phone"><figcaption>Phone, 375 px</figcaption>
    <iframe src="/email.html?v={{version}}" title="The email at phone width"></iframe></figure>
</section>
<section aria-labelledby="plain">
  <h2 id="plain">Plain text</h2>
  <pre>{{text}}</pre>
</section>
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview: {{title}}</title>
<style>
  :root { color-scheme: light dark; --muted: #5b6770; --line: #d5dbe0; --panel: #f5f7f9; }
  @media (prefers-color-scheme: dark) { :root { --muted: #a3adb6; --line: #3a444c; --panel: #1d2328; } }
  body { font-family: system-ui, sans-serif; margin: 0; padding: 16px 24px 48px; }
  header h1 { font-size: 20px; margin: 0 0 4px; }
  header p { margin: 2px 0; color: var(--muted); }
  .status { font-weight: bold; }
  .status.good { color: #1b7f3b; } .status.bad { color: #c0262d; }
  .findings { padding-left: 20px; font-family: ui-monospace, Menlo, monospace; font-size: 13px; }
  .findings li { margin: 3px 0; overflow-wrap: anywhere; }
  .findings .error { color: #c0262d; } .findings .warning { color: #9a6700; }
  .frames { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin-top: 16px; }
  figure { margin: 0; }
  figcaption { font-size: 13px; color: var(--muted); margin-bottom: 6px; }
  iframe { border: 1px solid var(--line); background: #fff; height: 900px; display: block; }
  .desktop iframe { width: 700px; } .phone iframe { width: 375px; }
  pre { background: var(--panel); border: 1px solid var(--line); padding: 16px; overflow-x: auto;
        font-size: 13px; line-height: 1.45; max-width: 80ch; }
  #live { font-size: 12px; color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>Preview of {{title}}</h1>
  <p>Subject: <strong>{{subject}}</strong></p>
  <p>Preheader: {{preheader}}</p>
  <p class="status {{status_class}}" id="summary">{{summary}}</p>
  <p id="live" data-version="{{version}}">Reloads when you save the issue or a template.</p>
</header>
<section aria-labelledby="checks">
  <h2 id="checks">Checks</h2>
  {{findings}}
</section>
{{picker}}
{{email}}
<script>
  const shown = {{version_json}};
  for (const frame of document.querySelectorAll("iframe")) {
    frame.addEventListener("load", () => {
      const doc = frame.contentDocument;
      if (doc && doc.documentElement) frame.style.height = (doc.documentElement.scrollHeight + 4) + "px";
    });
  }
  async function poll() {
    try {
      const answer = await fetch("/version", {cache: "no-store"});
      const body = await answer.json();
      if (body.version !== shown) { location.reload(); return; }
      document.getElementById("live").textContent = "Reloads when you save the issue or a template.";
    } catch (err) {
      document.getElementById("live").textContent = "The preview server is not answering.";
    }
    setTimeout(poll, {{poll_ms}});
  }
  setTimeout(poll, {{poll_ms}});
</script>
</body>
</html>
"""
