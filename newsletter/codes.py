"""The registry of finding codes: a stable name for every problem ``check`` can report.

Like a linter's rule codes, a code names a kind of problem independently of its message's
wording: findings carry one (``issues/2021-01.md:3: warning: … [subject-length]``), ``check
--ignore CODE`` hides one, and ``check`` drops a rendered-email finding whose code the file's own
check already reported. The table in ``docs/issue-format.md`` is generated from ``CODES``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from newsletter.models import Severity


class Where(enum.StrEnum):
    """Which check reports a code: the issue file's, or the rendered email's."""

    FILE = "issue file"
    EMAIL = "rendered email"
    RECORD = "DOI record"


@dataclass(frozen=True)
class Code:
    """One kind of finding: its stable name, level, which check reports it, and what it means."""

    name: str
    severity: Severity
    where: tuple[Where, ...]  # the checks that report it
    meaning: str

    @property
    def ignorable(self) -> bool:
        """Only warnings may be ignored: an error stops ``build`` and ``send`` whatever the flags."""
        return self.severity is Severity.WARNING


_E, _W = Severity.ERROR, Severity.WARNING
_F, _M, _FM = (Where.FILE,), (Where.EMAIL,), (Where.FILE, Where.EMAIL)
_R = (Where.RECORD,)

_TABLE: tuple[Code, ...] = (
    # the file as a whole
    Code("file-name", _E, _F, "the file name is not a month `YYYY-MM.md`"),
    Code("unreadable", _E, _F, "the file cannot be read (missing, a folder, no permission)"),
    Code("file-too-large", _E, _F, "the file is larger than 256 KB"),
    Code("not-utf8", _E, _F, "the file is not UTF-8 text"),
    Code("control-character", _E, _F, "the file holds a control character (a binary file?)"),
    Code("empty-file", _E, _F, "the file is empty"),
    Code("more-findings", _E, _F, "over 200 findings: the rest are counted in one line "
         "(a warning when all of them are warnings)"),
    # front matter
    Code("missing-front-matter", _E, _F, "the file does not start with a `---` front matter"),
    Code("front-matter-position", _E, _F, "blank lines above the opening `---`"),
    Code("unclosed-front-matter", _E, _F, "the front matter has no closing `---`"),
    Code("yaml-syntax", _E, _F, "the front matter is not valid YAML"),
    Code("yaml-comment", _W, _F, "a ` #` in an unquoted value: YAML drops the rest as a "
         "comment"),
    Code("yaml-tag", _E, _F, "a YAML tag such as `!custom` in the front matter"),
    Code("empty-front-matter", _E, _F, "the front matter holds nothing"),
    Code("front-matter-shape", _E, _F, "the front matter is not `key: value` lines"),
    Code("unknown-key", _E, _F, "a front matter key that is not known (with a suggestion)"),
    Code("duplicate-key", _E, _F, "a front matter key given twice"),
    Code("not-text", _E, _F, "a front matter value that is a list or a mapping"),
    Code("missing-subject", _E, _F, "the front matter has no `subject`"),
    Code("empty-subject", _E, _FM, "the subject is empty"),
    Code("multiline-subject", _E, _F, "the subject holds a line break or control character"),
    Code("subject-length", _W, _FM, "the subject is over 78 characters (inboxes cut it)"),
    Code("missing-preheader", _W, _F, "no `preheader`: the inbox shows the first words"),
    Code("preheader-length", _W, _FM, "the preheader is over 140 characters"),
    Code("bad-status", _E, _F, "`status` is neither `draft` nor `ready`"),
    # the body's structure
    Code("empty-intro", _W, _F, "no intro before the first article"),
    Code("no-articles", _E, _F, "the issue has no `## ` article"),
    Code("too-many-articles", _E, _F, "more than 5 articles"),
    Code("unexpected-heading", _E, _F, "a heading other than `## Title` and "
         "`### Practice Implications` (or a `---`/`===` underline making one)"),
    Code("heading-no-space", _W, _F, "`##Title` without a space is not a heading"),
    Code("article-heading-no-space", _E, _F, "`##Title` without a space, with field lines under "
         "it: an article was meant (its fields are not also reported as misplaced)"),
    Code("implications-heading", _E, _F, "a heading meant as `### Practice Implications` "
         "(`## Practice Implications`, `### Practice Implication`): read as that section"),
    Code("implications-before-article", _E, _F, "`### Practice Implications` before any article"),
    Code("unsafe-link", _E, _F, "a link or image that is not `https:`, `http:` or `mailto:`"),
    Code("empty-link", _E, _F, "a link without an address"),
    # an article
    Code("empty-title", _E, _F, "an article's `## ` title is empty"),
    Code("unknown-field", _E, _F, "a `Name:` field line that is not known (with a suggestion)"),
    Code("duplicate-field", _E, _F, "a field given twice in one article"),
    Code("empty-field", _E, _F, "a field line with no value"),
    Code("misplaced-field", _E, _F, "a field line below the summary's start, not under the title"),
    Code("missing-citation", _E, _F, "an article without a `Citation:` line"),
    Code("missing-doi", _E, _F, "an article with neither a `DOI:` nor a `Link:` line"),
    Code("missing-topics", _E, _F, "an article without a `Topics:` line"),
    Code("bad-doi", _E, _F, "a `DOI:` that is not a DOI"),
    Code("doubtful-doi", _W, _F, "a DOI holding a space or ending in `.`, `,` or `;`"),
    Code("duplicate-doi", _W, _F, "two articles with the same DOI"),
    Code("bad-link", _E, _F, "a `Link:` that is not an `https://` address"),
    Code("empty-topics", _E, _F, "`Topics:` names no topic"),
    Code("unknown-topic", _E, _F, "a topic not in `issues/topics.yaml` (with a suggestion)"),
    Code("duplicate-topic", _W, _F, "a topic named twice in one article"),
    Code("bottom-line-length", _W, _F, "a `Bottom line:` over 200 characters"),
    Code("bottom-line-sentences", _W, _F, "a `Bottom line:` of more than one sentence"),
    Code("bottom-line-wrapped", _W, _F, "text directly under `Bottom line:` (a bottom line "
         "wrapped onto a second line, or a summary without a blank line above it)"),
    Code("missing-summary", _E, _F, "an article without a summary paragraph"),
    Code("missing-implications", _E, _F, "an article without `### Practice Implications`"),
    Code("duplicate-implications", _E, _F, "a second `### Practice Implications` in an article"),
    Code("empty-implications", _E, _F, "`### Practice Implications` with nothing under it"),
    Code("placeholder", _W, _F, "a `[TODO: …]` left by `newsletter new`, still to be written "
         "(in a draft)"),
    Code("placeholder-ready", _E, _F, "a `[TODO: …]` placeholder in an issue whose status is "
         "`ready`: it cannot be built or sent"),
    # the article against its DOI's record (issues/.metadata/, Crossref, Unpaywall)
    Code("citation-mismatch", _W, _R, "the Citation's first author, year, title or journal "
         "differs from the DOI's record (the message gives the expected reference)"),
    Code("doi-not-found", _E, _R, "the DOI does not resolve: Crossref does not know it"),
    Code("retracted", _E, _R, "the article was retracted (the message names the notice and its "
         "date): `send` and the scheduler refuse the issue"),
    Code("corrected", _W, _R, "the article has a correction: the email shows a dated notice"),
    Code("expression-of-concern", _W, _R, "the article has an expression of concern: the email "
         "shows a dated notice"),
    Code("doi-not-checked", _W, _R, "DOIs not checked: no network and no stored record, or the "
         "online re-check failed (the message says when the records were last checked)"),
    # the rendered email
    Code("email-clipped", _E, _M, "the HTML email is over 102 KB: Gmail clips it"),
    Code("email-size", _W, _M, "the HTML email is over 90 KB, close to Gmail's 102 KB"),
    Code("missing-unsubscribe", _E, _M, "the template lost the unsubscribe link"),
    Code("missing-preferences", _E, _M, "the template lost the preferences link"),
    Code("unrendered-template", _E, _M, "template or MJML syntax left in the email"),
    Code("email-link", _E, _M, "a link of the email that is not an absolute address"),
    Code("missing-alt", _E, _M, "an image of the email without alt text"),
    Code("empty-alt", _W, _FM, "an image with empty alt text (fine only for decoration; in "
         "the issue's Markdown, `![what it shows](…)`)"),
    Code("link-text", _W, _FM, "a link whose text says nothing out of context (\"click here\", "
         "\"here\", \"read more\", \"link\") or is a bare address (a DOI's https://doi.org/ "
         "address is fine)"),
    Code("heading-skip", _W, _M, "a heading that skips a level (`<h2>` then `<h4>`)"),
    Code("low-contrast", _W, _M, "text under 4.5:1 contrast with its background (3:1 for large "
         "text), from the email's inline colours (WCAG 2.1 AA)"),
    Code("preheader-short", _W, _M, "the preheader is under 30 characters: the inbox adds "
         "the email's first words"),
)  # fmt: skip

CODES: dict[str, Code] = {code.name: code for code in _TABLE}


def code_for(name: str, severity: Severity) -> Code:
    """The registered code ``name``; a programming error when unknown or of another level."""
    code = CODES.get(name)
    if code is None or code.severity is not severity:
        raise ValueError(f"finding code {name!r} is not registered as a {severity}")
    return code
