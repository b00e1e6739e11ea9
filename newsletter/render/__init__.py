"""Render an issue once: Jinja2 → MJML → HTML (``mjml``) → inlined CSS (``premailer``), plus text.

What differs per recipient (the unsubscribe and preferences links) is left as ``Placeholder``
strings in both bodies; ``models.personalise`` fills them later with a plain substitution.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from newsletter.config import Links, Sender
from newsletter.doi.record import Record
from newsletter.doi.store import MetadataStore
from newsletter.models import Article, Issue, Placeholder, RenderedIssue
from newsletter.render import inline, mjml
from newsletter.render.jinja import month_name, render_template
from newsletter.render.text import TextWriter, render_text
from newsletter.variants import Variant

__all__ = ["MJML_TEMPLATE", "TextWriter", "email_context", "render_issue"]

MJML_TEMPLATE = "email/base.mjml.j2"
PREHEADER_MAX = 140


def render_issue(
    issue: Issue,
    *,
    templates_dir: Path,
    sender: Sender,
    links: Links,
    variant: Variant | None = None,
    lang: str = "en",
    records: Mapping[str, Record] | None = None,
) -> RenderedIssue:
    """The issue's final HTML, plain text and intermediate MJML, with per-recipient placeholders.

    ``variant`` picks, orders and marks the articles (``newsletter/variants.py``); without one,
    every article in the author's order, none marked. ``lang`` is the email's ``<html lang>``
    (``site.lang`` in schedule.yaml). ``records``: the issue's DOI records when the caller
    already read them (one read for all of an issue's variants); else read here.
    """
    context = email_context(
        issue, sender=sender, links=links, variant=variant, lang=lang, records=records
    )
    source = render_template(templates_dir, MJML_TEMPLATE, context)
    html = inline.inline_css(mjml.to_html(source))
    return RenderedIssue(
        month=issue.month,
        subject=issue.subject,
        preheader=context["preheader"],
        html=html,
        text=render_text(templates_dir, context),
        mjml=source,
    )


def email_context(
    issue: Issue,
    *,
    sender: Sender,
    links: Links,
    variant: Variant | None = None,
    lang: str = "en",
    records: Mapping[str, Record] | None = None,
) -> dict[str, Any]:
    """Everything the email templates may use; the same names for the HTML and the text.

    ``articles`` are the variant's, in its order; ``marked`` holds the positions (0-based, in
    ``articles``) of those marked as the reader's; ``partial`` says some articles were left out.
    """
    articles = issue.articles if variant is None else variant.articles(issue)
    marked = (
        frozenset()
        if variant is None
        else frozenset(n for n, index in enumerate(variant.order) if index in variant.marked)
    )
    return {
        "issue": issue,
        "lang": lang,
        "articles": articles,
        "records": doi_records(issue) if records is None else records,
        "marked": marked,
        "partial": len(articles) < len(issue.articles),
        "month_label": month_name(issue.month),
        "preheader": issue.preheader or _fallback_preheader(issue, articles),
        "sender": sender,
        "issue_url": links.issue_url(issue.month),
        "archive_url": links.archive_url,
        "subscribe_url": links.subscribe_url,
        "topic_url": links.topic_url,
        "unsubscribe_url": Placeholder.UNSUBSCRIBE_URL.value,
        "preferences_url": Placeholder.PREFERENCES_URL.value,
    }


def doi_records(issue: Issue) -> dict[str, Record]:
    """The stored DOI records of the issue's articles (beside its file, in ``.metadata/``).

    The templates show a record's free full text link and its dated notices (corrections,
    expressions of concern, retractions); an article without a record shows neither.
    """
    store = MetadataStore.beside(issue.path)
    return store.records(article.doi for article in issue.articles if article.doi)


def _fallback_preheader(issue: Issue, articles: tuple[Article, ...]) -> str:
    """Without a preheader, inboxes show the first words of the body: offer the article titles."""
    titles = "; ".join(article.title for article in articles)
    text = f"This month: {titles}" if titles else issue.subject
    return text if len(text) <= PREHEADER_MAX else text[: PREHEADER_MAX - 1].rstrip() + "…"
