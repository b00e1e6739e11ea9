"""The preview's page: a side panel (subject, status, findings, variant picker) and the email.

Everything that lands in HTML is escaped here. The page has no inline script or style (its
Content-Security-Policy allows only its own ``/preview.js`` and ``/preview.css``); the email's
frames are sandboxed (no script runs in them). ``panel()`` is what the page fetches after each
save to refresh itself without a reload.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from newsletter.codes import CODES
from newsletter.models import Finding, TopicMode

if TYPE_CHECKING:
    from newsletter.web.preview import PreviewState

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# The email itself: its own styles and remote images and fonts, never a script.
EMAIL_CSP = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline' http: https:; "
    "font-src http: https: data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
STATUS_MEANING = {
    "draft": "the scheduler will not send it until it says ready",
    "ready": "the scheduler sends it on its day",
}
NO_TEXT = "(no text: see the errors)"
_SLOT = re.compile(r"\{\{(\w+)\}\}")
esc = html.escape


def page(title: str, state: PreviewState) -> str:
    """The whole page for one rendering."""
    values = {
        "title": esc(title),
        "version": str(state.version),
        "panel": panel_html(state),
        "picker": picker_html(state),
        "picker_key": esc(picker_key(state)),
        "variant": variant_html(state),
        "frame_query": esc(frame_query(state)),
        "text": esc(state.text or NO_TEXT),
    }
    # one pass, so a value that happens to contain "{{text}}" is never expanded itself
    return _SLOT.sub(lambda match: values[match.group(1)], PAGE)


def panel(state: PreviewState) -> dict[str, Any]:
    """What the page replaces after a save (``/panel.json``)."""
    return {
        "version": state.version,
        "panel": panel_html(state),
        "picker": picker_html(state),
        "pickerKey": picker_key(state),
        "variant": variant_html(state),
        "text": state.text or NO_TEXT,
    }


def frame_query(state: PreviewState) -> str:
    query = state.choice.query
    return f"v={state.version}" + (f"&{query}" if query else "")


def panel_html(state: PreviewState) -> str:
    """Subject, preheader, status, the error count and every finding."""
    status = state.status or "unknown"
    meaning = STATUS_MEANING.get(status, "the front matter cannot be read")
    return (
        '<dl class="facts">'
        f'<dt>Subject</dt><dd id="subject">{esc(state.subject or "—")}</dd>'
        f'<dt>Preheader</dt><dd id="preheader">{esc(state.preheader or "—")}</dd>'
        f'<dt>Status</dt><dd><span id="status" class="badge {esc(status)}">{esc(status)}</span> '
        f'<span class="meaning">{esc(meaning)}</span></dd></dl>'
        f'<p class="summary {"bad" if state.errors else "good"}" id="summary">'
        f"{esc(_summary(state))}</p>"
        f'<h2 id="checks">Checks</h2>{_findings_html(state)}'
    )


def _summary(state: PreviewState) -> str:
    errors = state.errors
    warnings = sum(not finding.is_error for finding in state.findings)
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"


def _findings_html(state: PreviewState) -> str:
    items = []
    if state.error:
        items.append(f'<li class="error">{esc(state.error)}</li>')
    for finding in state.findings:
        kind = "error" if finding.is_error else "warning"
        where = f"{finding.path}:{finding.line}: {finding.severity}: {finding.message} "
        items.append(f'<li class="{kind}">{esc(where)}{_code_html(finding.code)}</li>')
    if not items:
        return '<p class="none">No findings: the issue and its email pass every check.</p>'
    return '<ul class="findings">' + "".join(items) + "</ul>"


def _code_html(code: str) -> str:
    """The finding's code, with its meaning from ``newsletter/codes.py`` as a tooltip."""
    known = CODES.get(code)
    meaning = known.meaning.replace("`", "") if known is not None else ""
    return f'<code class="code" title="{esc(meaning)}">[{esc(code)}]</code>'


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "path": finding.path,
        "line": finding.line,
        "severity": str(finding.severity),
        "message": finding.message,
        "code": finding.code,
        "text": str(finding),
    }


def variant_html(state: PreviewState) -> str:
    if not state.variant:
        return ""
    label = dict(state.variants).get(state.variant, "")
    return f"Variant: <code>{esc(state.variant)}</code>" + (f" — {esc(label)}" if label else "")


def picker_key(state: PreviewState) -> str:
    """Changes only when the picker's choices do: the page keeps a picker the author is using."""
    return "|".join((*state.issue_topics, "", *(key for key, _ in state.variants)))


def picker_html(state: PreviewState) -> str:
    """Two GET forms of this page: a variant the issue produces, or a reader's topics."""
    if not state.variants:
        return ""
    options = "".join(
        f'<option value="{esc(key)}"{" selected" if key == state.variant else ""}>'
        f"{esc(label)} ({esc(key)})</option>"
        for key, label in state.variants
    )
    chosen = set(state.choice.topics)
    boxes = "".join(
        f'<label><input type="checkbox" name="topic" value="{esc(t)}"'
        f"{' checked' if t in chosen else ''}> {esc(t)}</label> "
        for t in state.issue_topics
    )
    only = state.choice.mode is TopicMode.ONLY
    return (
        '<form class="picker" method="get" action="/"><label for="variant-list">Show the variant'
        f'</label> <select id="variant-list" name="variant">{options}</select> '
        '<button type="submit">Show</button></form>'
        '<form class="picker" method="get" action="/"><fieldset><legend>or the email of a '
        f"reader who follows</legend>{boxes}<br>"
        f'<label><input type="radio" name="mode" value="all"{"" if only else " checked"}> '
        "every article, theirs first</label> "
        f'<label><input type="radio" name="mode" value="only"{" checked" if only else ""}> '
        "only their topics</label> "
        '<button type="submit">Show</button> <a href="/">default</a></fieldset></form>'
    )


def placeholder_page(state: PreviewState) -> str:
    """What the frames show when there is no email to show."""
    why = state.error or "The issue has errors, so there is no email to show."
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>No email</title>'
        '<body style="font-family:sans-serif;padding:1em">'
        f"<p>{esc(why)}</p><p>See the findings beside; this frame follows the next save.</p>"
    )


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview: {{title}}</title>
<link rel="stylesheet" href="/preview.css">
<script src="/preview.js" defer></script>
</head>
<body data-version="{{version}}">
<div class="layout">
<aside class="side" aria-label="The issue">
  <h1>Preview of {{title}}</h1>
  <p id="live" role="status">Updates when you save the issue, the topics or a template.</p>
  <div id="panel">{{panel}}</div>
  <div id="picker" data-key="{{picker_key}}">{{picker}}</div>
</aside>
<main>
  <p id="variant">{{variant}}</p>
  <section class="frames" aria-label="The HTML email">
    <figure class="desktop"><figcaption>Desktop, 700 px</figcaption>
      <iframe class="email" src="/email.html?{{frame_query}}" title="The email at desktop width"
              sandbox="allow-same-origin allow-popups"></iframe></figure>
    <figure class="phone"><figcaption>Phone, 375 px</figcaption>
      <iframe class="email" src="/email.html?{{frame_query}}" title="The email at phone width"
              sandbox="allow-same-origin allow-popups"></iframe></figure>
  </section>
  <section aria-labelledby="plain">
    <h2 id="plain">Plain text</h2>
    <pre id="text">{{text}}</pre>
  </section>
</main>
</div>
</body>
</html>
"""

CSS = """:root { color-scheme: light dark; --muted: #5b6770; --line: #d5dbe0; --panel: #f5f7f9; }
@media (prefers-color-scheme: dark) { :root { --muted: #a3adb6; --line: #3a444c; --panel: #1d2328; } }
body { font-family: system-ui, sans-serif; margin: 0; padding: 16px 24px 48px; }
.layout { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.side { flex: 0 1 360px; min-width: 280px; position: sticky; top: 16px; }
main { flex: 1 1 700px; min-width: 0; }
h1 { font-size: 18px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 15px; margin: 16px 0 4px; }
#live { font-size: 12px; color: var(--muted); margin: 0 0 8px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 10px; margin: 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; overflow-wrap: anywhere; }
#subject { font-weight: bold; }
.badge { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: 13px;
         font-weight: bold; border: 1px solid currentColor; }
.badge.draft { color: #9a6700; } .badge.ready { color: #1b7f3b; } .badge.unknown { color: #c0262d; }
.meaning { font-size: 12px; color: var(--muted); }
.summary { font-weight: bold; } .summary.good { color: #1b7f3b; } .summary.bad { color: #c0262d; }
.findings { padding-left: 18px; font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
.findings li { margin: 3px 0; overflow-wrap: anywhere; }
.findings .error { color: #c0262d; } .findings .warning { color: #9a6700; }
.code { font-weight: bold; cursor: help; }
.none { color: var(--muted); }
.picker { margin: 12px 0; font-size: 13px; }
.picker select { max-width: 100%; }
.frames { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin-top: 8px; }
figure { margin: 0; }
figcaption { font-size: 13px; color: var(--muted); margin-bottom: 6px; }
iframe { border: 1px solid var(--line); background: #fff; height: 900px; display: block; }
.desktop iframe { width: 700px; } .phone iframe { width: 375px; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 16px; overflow-x: auto;
      font-size: 13px; line-height: 1.45; max-width: 80ch; }
"""

JS = """"use strict";
// Told of each save by /events (server-sent events), the page reloads its two frames and
// refreshes its panel from /panel.json: no page reload, no polling. Nothing here is inline:
// the page's Content-Security-Policy allows only this file.
(() => {
  const live = document.getElementById("live");
  const frames = Array.from(document.querySelectorAll("iframe.email"));
  const query = location.search.slice(1);
  const panelUrl = "/panel.json" + (query ? "?" + query : "");
  let shown = Number(document.body.dataset.version);
  let wanted = shown;
  let busy = false;

  const say = (text) => { live.textContent = text; };
  const fit = (frame) => {
    const doc = frame.contentDocument;
    if (doc && doc.documentElement) {
      frame.style.height = (doc.documentElement.scrollHeight + 4) + "px";
    }
  };
  for (const frame of frames) {
    frame.addEventListener("load", () => fit(frame));
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") fit(frame);
  }

  async function show(version) {
    for (const frame of frames) {
      frame.src = "/email.html?v=" + version + (query ? "&" + query : "");
    }
    const answer = await fetch(panelUrl, {cache: "no-store"});
    if (!answer.ok) throw new Error("the server answered " + answer.status);
    const state = await answer.json();
    document.getElementById("panel").innerHTML = state.panel;
    document.getElementById("variant").innerHTML = state.variant;
    document.getElementById("text").textContent = state.text;
    const picker = document.getElementById("picker");
    if (picker.dataset.key !== state.pickerKey) {
      picker.innerHTML = state.picker;
      picker.dataset.key = state.pickerKey;
    }
  }

  async function catchUp() {
    if (busy) return;  // the running catch-up sees the newer version when it finishes
    busy = true;
    try {
      while (wanted !== shown) {
        const version = wanted;
        await show(version);
        shown = version;
        document.body.dataset.version = String(version);
      }
      say("Live: updates when you save the issue, the topics or a template.");
    } catch (err) {
      say("Could not refresh (" + err.message + "); trying again on the next save.");
    } finally {
      busy = false;
    }
  }

  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    say("Live: updates when you save the issue, the topics or a template.");
  });
  events.addEventListener("error", () => {
    say("The preview server is not answering; reconnecting…");
  });
  events.addEventListener("version", (event) => {
    wanted = JSON.parse(event.data).version;
    catchUp();
  });
  document.addEventListener("change", (event) => {
    if (event.target.id === "variant-list") event.target.form.requestSubmit();
  });
})();
"""

ASSETS = {"/preview.js": ("text/javascript", JS), "/preview.css": ("text/css", CSS)}
