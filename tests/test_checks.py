"""Checks of the rendered email: size, links, alt text, leftovers, placeholders, lengths."""

from __future__ import annotations

import pytest

from newsletter.checks import GMAIL_CLIP_BYTES, check_rendered, merge_findings
from newsletter.config import Settings
from newsletter.issues import load_topics, read_issue
from newsletter.models import Finding, Placeholder, RenderedIssue, Severity
from newsletter.render import render_issue

FOOTER = (
    f'<a href="{Placeholder.UNSUBSCRIBE_URL.value}">Unsubscribe</a>'
    f'<a href="{Placeholder.PREFERENCES_URL.value}">Preferences</a>'
)
TEXT_FOOTER = f"{Placeholder.UNSUBSCRIBE_URL.value}\n{Placeholder.PREFERENCES_URL.value}\n"


def email(
    body: str = "",
    *,
    subject: str = "A subject of ordinary length",
    preheader: str = "A preheader that is long enough to fill the inbox preview.",
    text: str = "Text.\n",
) -> RenderedIssue:
    html = f'<!DOCTYPE html>\n<html lang="en"><body>\n{body}\n{FOOTER}\n</body></html>'
    return RenderedIssue(
        month="2021-01",
        subject=subject,
        preheader=preheader,
        html=html,
        text=text + TEXT_FOOTER,
        mjml="<mjml></mjml>",
    )


def check(rendered: RenderedIssue) -> list[Finding]:
    return check_rendered(rendered, path="issues/2021-01.md")


def errors(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.severity is Severity.ERROR]


def warnings(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.severity is Severity.WARNING]


def test_a_clean_email_has_no_findings() -> None:
    assert check(email('<p><a href="https://example.org/">ok</a></p>')) == []


def test_sample_issues_pass_every_check(settings: Settings) -> None:
    topics = load_topics(settings.topics_file)
    paths = sorted(settings.issues_dir.glob("20*.md"))
    assert len(paths) >= 3
    for path in paths:
        rendered = render_issue(
            read_issue(path, topics),
            templates_dir=settings.templates_dir,
            sender=settings.sender,
            links=settings.links,
        )
        assert check(rendered) == [], path


def test_findings_name_the_file() -> None:
    [finding] = check(email('<a href="/relative">x</a>'))
    assert str(finding).startswith("issues/2021-01.md:0: error: email.html line 3:")


def test_html_over_102_kb_is_an_error_and_close_to_it_a_warning() -> None:
    big = "<p>" + "x" * GMAIL_CLIP_BYTES + "</p>"
    assert any("Gmail clips" in message for message in errors(check(email(big))))
    near = "<p>" + "x" * (GMAIL_CLIP_BYTES - 5 * 1024) + "</p>"
    found = check(email(near))
    assert not errors(found)
    assert any("close to Gmail's 102 KB" in message for message in warnings(found))


def test_size_counts_bytes_not_characters() -> None:
    body = "<p>" + "é" * (GMAIL_CLIP_BYTES // 2 + 10) + "</p>"  # 2 bytes each in UTF-8
    assert any("Gmail clips" in message for message in errors(check(email(body))))


@pytest.mark.parametrize(
    "href",
    [
        "/archive/",
        "archive.html",
        "#top",
        "javascript:alert(1)",
        "data:text/html,x",
        "",
        "https://",
    ],
)
def test_links_must_be_absolute_http_or_mailto(href: str) -> None:
    found = errors(check(email(f'<a href="{href}">x</a>')))
    assert len(found) == 1 and "is not an absolute https:, http: or mailto: address" in found[0]


@pytest.mark.parametrize(
    "href", ["https://example.org/a?b=1&amp;c=2", "http://example.org", "mailto:editor@example.org"]
)
def test_absolute_links_pass(href: str) -> None:
    assert check(email(f'<a href="{href}">x</a>')) == []


def test_image_sources_are_links_too() -> None:
    found = errors(check(email('<img src="chart.png" alt="A chart">')))
    assert len(found) == 1 and "'chart.png'" in found[0]


def test_images_need_alt_text() -> None:
    found = check(email('<img src="https://example.org/a.png">'))
    assert [m for m in errors(found) if "has no alt text" in m]
    found = check(email('<img src="https://example.org/a.png" alt="">'))
    assert not errors(found) and [m for m in warnings(found) if "empty alt text" in m]
    assert check(email('<img src="https://example.org/a.png" alt="Drop-out by month"/>')) == []


@pytest.mark.parametrize(
    "leftover", ["{{ article.title }}", "{% if x %}", "<mj-text>x</mj-text>", "__NL_OTHER_URL__"]
)
def test_unrendered_leftovers_are_errors(leftover: str) -> None:
    found = errors(check(email(f"<p>{leftover}</p>")))
    assert any("unrendered" in message and "email.html line 3" in message for message in found)
    found = errors(check(email(text=f"Text {leftover}\n")))
    assert any("email.txt line 1" in message for message in found)


def test_css_braces_are_not_leftovers() -> None:
    body = "<style>@media (max-width:480px){.a{color:red}}</style>"
    assert check(email(body)) == []


def test_a_lost_unsubscribe_link_is_an_error() -> None:
    rendered = email()
    html = rendered.html.replace(Placeholder.UNSUBSCRIBE_URL.value, "https://example.org/")
    found = errors(check(RenderedIssue(**{**rendered.__dict__, "html": html})))
    assert found == [
        "email.html has no unsubscribe url (__NL_UNSUBSCRIBE_URL__): the template lost it"
    ]


def test_subject_and_preheader_lengths() -> None:
    assert [m for m in warnings(check(email(subject="S" * 79))) if "the subject is 79" in m]
    assert check(email(subject="S" * 78)) == []
    assert errors(check(email(subject="  "))) == ["the subject is empty"]
    assert [m for m in warnings(check(email(preheader="P" * 141))) if "the preheader is 141" in m]
    assert [m for m in warnings(check(email(preheader="Too short"))) if "under 30" in m]


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def test_findings_carry_their_codes() -> None:
    """Each kind of problem has its own code, at the level the registry gives it."""
    rendered = email('<img src="https://x/a.png"><img src="https://x/b.png" alt="">')
    html = rendered.html.replace(Placeholder.PREFERENCES_URL.value, "/prefs")
    found = check(RenderedIssue(**{**rendered.__dict__, "html": html, "subject": "S" * 79}))
    assert codes(found) == [
        "missing-preferences",
        "email-link",
        "missing-alt",
        "empty-alt",
        "subject-length",
    ]
    assert codes(check(email("{{ x }}", preheader="short"))) == [
        "unrendered-template",
        "preheader-short",
    ]
    big = email("x" * GMAIL_CLIP_BYTES)
    assert codes(check(big)) == ["email-clipped"]


def test_merge_drops_email_findings_the_file_already_reported() -> None:
    own = [Finding("f.md", 2, Severity.WARNING, "the subject has 90 characters", "subject-length")]
    rendered = check(email(subject="S" * 90, preheader="short"))
    assert codes(rendered) == ["subject-length", "preheader-short"]
    assert codes(merge_findings(own, rendered)) == ["subject-length", "preheader-short"]
    assert merge_findings(own, rendered)[0].line == 2
    assert codes(merge_findings([], rendered)) == ["subject-length", "preheader-short"]
