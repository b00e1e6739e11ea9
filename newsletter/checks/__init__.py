"""Checks of a rendered email before anyone gets it: size, links, alt text, leftovers, lengths,
and accessibility (link text, heading levels, contrast: ``accessibility``).

The HTML is read with the standard library's ``html.parser``; each finding names the line of the
rendered ``email.html`` it is about, so it can be looked up in ``newsletter build``'s output.
"""

from __future__ import annotations

from collections.abc import Sequence
from html.parser import HTMLParser

from newsletter.checks import accessibility
from newsletter.codes import CODES
from newsletter.models import Finding, Placeholder, RenderedIssue, personalise

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail cuts messages larger than this behind "[Message clipped]"
SIZE_WARNING_BYTES = 90 * 1024
SUBJECT_MAX = 78
PREHEADER_MAX = 140
PREHEADER_MIN = 30
SAFE_SCHEMES = ("https://", "http://", "mailto:")
# Opening markers only: CSS legitimately holds "}}" (nested rules).
LEFTOVERS = ("{{", "{%", "<mj-", "</mj-", "__NL_")
SAMPLE_VALUES = {
    Placeholder.UNSUBSCRIBE_URL: "https://example.org/unsubscribe/SAMPLE-TOKEN",
    Placeholder.PREFERENCES_URL: "https://example.org/preferences/SAMPLE-TOKEN",
}
_MISSING_LINK = {
    Placeholder.UNSUBSCRIBE_URL: "missing-unsubscribe",
    Placeholder.PREFERENCES_URL: "missing-preferences",
}
_LINK_ATTRIBUTES = {"a": "href", "area": "href", "img": "src", "link": "href", "form": "action"}


class _Collector(HTMLParser):
    """Gathers the links and images of a document with the line each stands on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[int, str, str]] = []  # (line, tag, url)
        self.images_without_alt: list[tuple[int, str]] = []
        self.images_empty_alt: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        line = self.getpos()[0]
        attribute = _LINK_ATTRIBUTES.get(tag)
        if attribute and (tag != "a" or attribute in values):
            self.links.append((line, tag, (values.get(attribute) or "").strip()))
        if tag == "img":
            src = values.get("src") or ""
            if "alt" not in values:
                self.images_without_alt.append((line, src))
            elif not (values["alt"] or "").strip():
                self.images_empty_alt.append((line, src))

    handle_startendtag = handle_starttag


def check_rendered(rendered: RenderedIssue, *, path: str) -> list[Finding]:
    """Every problem of the rendered email, as findings about ``path`` (the issue it came from)."""
    html = personalise(rendered.html, SAMPLE_VALUES)
    text = personalise(rendered.text, SAMPLE_VALUES)
    findings: list[Finding] = []
    findings += _size(html, path)
    findings += _placeholders(rendered, path)
    findings += _leftovers(html, "email.html", path)
    findings += _leftovers(text, "email.txt", path)
    findings += _html_elements(html, path)
    findings += _lengths(rendered, path)
    findings += _accessibility(html, path)
    return findings


def _accessibility(html: str, path: str) -> list[Finding]:
    """Link texts, heading levels and text contrast of the email (see ``accessibility``)."""
    report = accessibility.read(html)
    findings = [
        _finding(
            path,
            "link-text",
            f"email.html line {link.line}: the link to {link.href!r} {link.problem}: "
            "say where it leads, e.g. the article's or page's name",
        )
        for link in report.links
    ]
    findings += [
        _finding(
            path,
            "heading-skip",
            f"email.html line {heading.line}: <h{heading.level}> follows <h{heading.previous}>, "
            f"skipping a level: screen-reader users navigate by headings",
        )
        for heading in report.headings
    ]
    findings += [
        _finding(
            path,
            "low-contrast",
            f"email.html line {low.line}: text {_short_text(low.text)!r} is "
            f"{accessibility.hex_color(low.color)} on {accessibility.hex_color(low.background)}, "
            f"contrast {low.ratio:.2f}:1; WCAG AA needs {low.needed:g}:1 (change the template's "
            "colours)",
        )
        for low in report.contrast
    ]
    return findings


def _short_text(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finding(path: str, code: str, message: str) -> Finding:
    """A finding about the whole email (line 0), at the level ``code`` is registered with."""
    return Finding(path=path, line=0, severity=CODES[code].severity, message=message, code=code)


def merge_findings(own: Sequence[Finding], rendered: Sequence[Finding]) -> list[Finding]:
    """The file's findings, then the email's whose code the file did not report already.

    Subject and preheader lengths are checked in both: the file's finding names the line.
    """
    reported = {finding.code for finding in own}
    return [*own, *(finding for finding in rendered if finding.code not in reported)]


def _size(html: str, path: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    shown = f"{size / 1024:.1f} KB"
    if size >= GMAIL_CLIP_BYTES:
        return [
            _finding(
                path,
                "email-clipped",
                f"the HTML email is {shown}; Gmail clips emails over 102 KB (shorten the issue)",
            )
        ]
    if size >= SIZE_WARNING_BYTES:
        return [_finding(path, "email-size", f"the HTML email is {shown}, close to Gmail's 102 KB")]
    return []


def _placeholders(rendered: RenderedIssue, path: str) -> list[Finding]:
    """The unsubscribe link must reach every reader, in both versions (CAN-SPAM, CASL)."""
    findings = []
    for placeholder in Placeholder:
        for body, name in ((rendered.html, "email.html"), (rendered.text, "email.txt")):
            if placeholder.value not in body:
                findings.append(
                    _finding(
                        path,
                        _MISSING_LINK[placeholder],
                        f"{name} has no {placeholder.name.lower().replace('_', ' ')} "
                        f"({placeholder.value}): the template lost it",
                    )
                )
    return findings


def _leftovers(body: str, name: str, path: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(body.splitlines(), start=1):
        for marker in LEFTOVERS:
            if marker in line:
                findings.append(
                    _finding(
                        path,
                        "unrendered-template",
                        f"{name} line {number}: unrendered {marker!r} left in the email: "
                        f"{_excerpt(line, marker)}",
                    )
                )
                break
    return findings


def _html_elements(html: str, path: str) -> list[Finding]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    findings = []
    for line, tag, url in collector.links:
        if not url.lower().startswith(SAFE_SCHEMES) or url.lower() in SAFE_SCHEMES:
            findings.append(
                _finding(
                    path,
                    "email-link",
                    f"email.html line {line}: <{tag}> link {url!r} is not an absolute "
                    "https:, http: or mailto: address",
                )
            )
    for line, src in collector.images_without_alt:
        findings.append(
            _finding(path, "missing-alt", f"email.html line {line}: image {src!r} has no alt text")
        )
    for line, src in collector.images_empty_alt:
        findings.append(
            _finding(
                path,
                "empty-alt",
                f"email.html line {line}: image {src!r} has empty alt text "
                "(fine only for decoration)",
            )
        )
    return findings


def _lengths(rendered: RenderedIssue, path: str) -> list[Finding]:
    findings = []
    if not rendered.subject.strip():
        findings.append(_finding(path, "empty-subject", "the subject is empty"))
    elif len(rendered.subject) > SUBJECT_MAX:
        findings.append(
            _finding(
                path,
                "subject-length",
                f"the subject is {len(rendered.subject)} characters; inboxes cut it after "
                f"about {SUBJECT_MAX}",
            )
        )
    preheader = rendered.preheader.strip()
    if len(preheader) > PREHEADER_MAX:
        findings.append(
            _finding(
                path,
                "preheader-length",
                f"the preheader is {len(preheader)} characters; inboxes show about {PREHEADER_MAX}",
            )
        )
    elif len(preheader) < PREHEADER_MIN:
        findings.append(
            _finding(
                path,
                "preheader-short",
                f"the preheader is {len(preheader)} characters; under {PREHEADER_MIN} the inbox "
                "fills the rest with the email's first words",
            )
        )
    return findings


def _excerpt(line: str, marker: str, around: int = 30) -> str:
    at = line.find(marker)
    return line[max(0, at - around) : at + len(marker) + around].strip()
