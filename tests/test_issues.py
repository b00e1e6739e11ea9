"""The issue file format (docs/issue-format.md): every rule on good and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import IssueError, IssueNotFoundError
from newsletter.issues import (
    lint_issue,
    month_of,
    read_issue,
    resolve_issue,
)
from newsletter.models import IssueStatus, Severity
from tests.issuekit import DATA, GOOD, REPO, SICI, TOPICS, article_n, edit, lint, only, write

# --- valid files -----------------------------------------------------------------------------------


def test_good_file_becomes_an_issue(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, GOOD)
    assert findings == []
    assert issue is not None
    assert (issue.month, issue.subject, issue.status) == (
        "2021-01",
        "Therapist well-being",
        "ready",
    )
    assert issue.status is IssueStatus.READY
    assert issue.preheader == "Two studies on how practitioners fare."
    assert issue.intro == "This month, two studies."
    assert issue.source == GOOD
    (article,) = issue.articles
    assert article.title == "First article"
    assert article.citation == "Doe, J. (2020). A study. *Journal of Studies*."
    assert (article.doi, article.link) == ("10.1002/cpp.2509", None)
    assert article.url == "https://doi.org/10.1002/cpp.2509"
    assert article.topics == ("Therapist Factors", "Attendance, Attrition, and Drop-Out")
    assert article.summary == "The summary paragraph."
    assert article.implications == "What to do about it."
    assert article.line == 9


@pytest.mark.parametrize("month", ["2020-11", "2020-12", "2021-01"])
def test_sample_issues_lint_clean(month: str) -> None:
    path = REPO / "issues" / f"{month}.md"
    issue, findings = lint_issue(path, TOPICS)
    assert findings == ()
    assert issue is not None
    assert issue.month == month
    assert issue.status is IssueStatus.READY
    assert len(issue.articles) == 2
    for article in issue.articles:
        assert article.doi and article.doi.startswith("10.")
        assert article.summary.count("\n\n") >= 1  # two paragraphs at least
        assert article.implications


def test_status_defaults_to_draft(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {4: None}))
    assert findings == []
    assert issue is not None and issue.status is IssueStatus.DRAFT


def test_status_is_case_insensitive(tmp_path: Path) -> None:
    issue, _ = lint(tmp_path, edit(GOOD, {4: "status: Ready"}))
    assert issue is not None and issue.status is IssueStatus.READY


def test_field_names_and_topics_are_case_insensitive(tmp_path: Path) -> None:
    text = edit(
        GOOD,
        {
            10: "citation: Doe, J. (2020).",
            11: "doi: 10.1002/cpp.2509",
            12: "TOPICS:  therapist   factors ;attendance, attrition, and drop-out;",
        },
    )
    issue, findings = lint(tmp_path, text)
    assert findings == []
    assert issue is not None
    assert issue.articles[0].topics == ("Therapist Factors", "Attendance, Attrition, and Drop-Out")


def test_blank_lines_between_fields_are_allowed(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {9: "## First article\n", 11: "\nDOI: 10.1/x\n"}))
    assert findings == []
    assert issue is not None and issue.articles[0].doi == "10.1/x"


def test_link_instead_of_doi(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {11: "Link: https://example.org/paper?id=3"}))
    assert findings == []
    assert issue is not None
    article = issue.articles[0]
    assert (article.doi, article.link) == (None, "https://example.org/paper?id=3")
    assert article.url == "https://example.org/paper?id=3"


def test_doi_and_link_both_given_doi_wins(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {11: "DOI: 10.1/x\nLink: https://example.org/"}))
    assert findings == []
    assert issue is not None and issue.articles[0].url == "https://doi.org/10.1/x"


def test_tricky_but_valid_file(tmp_path: Path) -> None:
    text = (DATA / "2030-01.md").read_text(encoding="utf-8")
    issue, findings = lint(tmp_path, text)
    assert findings == []
    assert issue is not None
    assert issue.subject == "Psychothérapie — ümlauts, 日本語 and “quotes”"
    first, second, third = issue.articles
    assert first.title == "Ärger & <Angst>: a < b & c"
    assert first.doi == SICI
    assert first.url == (
        "https://doi.org/10.1002/(SICI)1097-4679(199901)55:1%3C1::AID-JCLP1%3E3.0.CO;2-J"
    )
    assert first.topics == (
        "Attendance, Attrition, and Drop-Out",
        "Cognitive Therapy (CT) and Cognitive-Behavioural Therapy (CBT)",
        "Trauma and/or PTSD",
    )
    assert "<script>alert('x')</script>" in first.summary  # kept as typed; escaped when rendered
    assert "a < b & c" in first.summary
    assert "## not a heading inside a code block" in first.summary
    assert second.doi == "10.1000/a<b>#c?d%e"  # from a percent-encoded doi.org link
    assert second.url == "https://doi.org/10.1000/a%3Cb%3E%23c%3Fd%25e"
    assert third.link == "https://example.org/über?q=1&r=2"
    assert "mailto:editor@example.org" in third.implications


def test_crlf_and_bom_give_the_same_issue(tmp_path: Path) -> None:
    plain, _ = lint(tmp_path, GOOD)
    crlf, crlf_findings = lint(
        tmp_path, name="2021-02.md", content=b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()
    )
    assert crlf_findings == []
    assert plain is not None and crlf is not None
    assert crlf.articles == plain.articles
    assert (crlf.subject, crlf.intro) == (plain.subject, plain.intro)


def test_lone_cr_line_ends(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, GOOD.replace("\n", "\r"))
    assert findings == []
    assert issue is not None


def test_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    text = edit(GOOD, {12: "Topics: Depresion"}).replace("\n", "\r\n")
    _, findings = lint(tmp_path, text)
    assert only(findings).startswith("f.md:12: error: unknown topic")


def test_five_articles_are_fine(tmp_path: Path) -> None:
    text = edit(GOOD, {9: "".join(article_n(n) for n in range(1, 5)) + "\n## First article"})
    issue, findings = lint(tmp_path, text)
    assert findings == []
    assert issue is not None and len(issue.articles) == 5


def test_code_fence_hides_headings_and_fields(tmp_path: Path) -> None:
    text = edit(GOOD, {14: "Summary.\n\n```\n## Not an article\nDOI: 10.1/x\n# nor this\n```"})
    issue, findings = lint(tmp_path, text)
    assert findings == []
    assert issue is not None and len(issue.articles) == 1


def test_implications_heading_variants(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {16: "### practice implications: ###"}))
    assert findings == []
    assert issue is not None and issue.articles[0].implications == "What to do about it."


# --- front matter ------------------------------------------------------------------------------------


def test_no_front_matter(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {1: None, 2: None, 3: None, 4: None, 5: None}))
    assert findings[0] == (
        "f.md:1: error: the file must start with front matter: a line '---', 'subject: …', '---' [missing-front-matter]"
    )
    assert len(findings) == 1


def test_front_matter_not_closed(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {5: "more: text"}))
    assert findings == [
        "f.md:1: error: the front matter opened here is never closed: add a '---' line [unclosed-front-matter]"
    ]


def test_blank_lines_before_front_matter(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, "\n \n" + edit(GOOD, {4: "status: sent", 12: "Topics: Nope"}))
    assert findings == [
        "f.md:1: error: the front matter must start on line 1: remove the blank lines above it [front-matter-position]",
        'f.md:6: error: status must be "draft" or "ready", not "sent" [bad-status]',
        'f.md:14: error: unknown topic "Nope" [unknown-topic]',
    ]
    _, findings = lint(tmp_path, "\n" + edit(GOOD, {2: "subject: [", 3: None}))
    assert findings[1].startswith("f.md:3: error: the front matter is not valid YAML")
    _, findings = lint(tmp_path, "\n" + edit(GOOD, {2: None, 3: None}))
    assert findings[1] == (
        "f.md:2: error: the front matter has no subject: add 'subject: …' (the email's subject) [missing-subject]"
    )


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {3: "preheader: [unclosed"}))
    assert only(findings) == (
        'f.md:3: error: the front matter is not valid YAML: a value starting with "[" means '
        'something else in YAML; put the whole value in quotes: preheader: "[unclosed" '
        "[yaml-syntax]"
    )


def test_tab_in_front_matter(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {3: "\tpreheader: x"}))
    assert only(findings) == (
        "f.md:3: error: the front matter is not valid YAML: a tab on this line: YAML allows only "
        "spaces here; replace the tab with spaces [yaml-syntax]"
    )


def test_front_matter_that_is_a_list(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {2: "- subject", 3: "- preheader", 4: None}))
    assert (
        only(findings)
        == "f.md:2: error: the front matter must be 'key: value' lines [front-matter-shape]"
    )


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {4: "stauts: ready"}))
    assert (
        only(findings)
        == 'f.md:4: error: unknown front matter key "stauts" (did you mean "status"?) [unknown-key]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {4: "author: me"}))
    assert only(findings) == 'f.md:4: error: unknown front matter key "author" [unknown-key]'


def test_duplicate_key(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {4: "subject: again"}))
    assert only(findings) == (
        'f.md:4: error: "subject" appears twice in the front matter (first on line 2) [duplicate-key]'
    )


def test_missing_and_empty_subject(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {2: None}))
    assert only(findings) == (
        "f.md:1: error: the front matter has no subject: add 'subject: …' (the email's subject) [missing-subject]"
    )
    _, findings = lint(tmp_path, edit(GOOD, {2: "subject:"}))
    assert only(findings) == "f.md:2: error: the subject is empty [empty-subject]"


@pytest.mark.parametrize(
    "lines",
    [
        'subject: "first\\r\\nBcc: victim@example.org"',
        "subject: first\n  second",
        "subject: |\n  first",
        'subject: "tab\\there"',
        'subject: "line\\u2028separator"',
    ],
)
def test_subject_must_be_one_line(tmp_path: Path, lines: str) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {2: lines}))
    assert findings[0] == (
        "f.md:2: error: the subject must be a single line (no line breaks or control characters) [multiline-subject]"
    )
    assert len([f for f in findings if "error" in f]) == 1


def test_subject_must_be_text(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {2: "subject: [a, b]"}))
    assert (
        only(findings)
        == 'f.md:2: error: "subject" must be text, not a list or a mapping [not-text]'
    )


def test_numbers_and_booleans_are_text(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {2: "subject: 2021", 3: "preheader: yes"}))
    assert findings == []
    assert issue is not None and (issue.subject, issue.preheader) == ("2021", "yes")


def test_long_subject_warns_and_still_parses(tmp_path: Path) -> None:
    subject = "x" * 79
    issue, findings = lint(tmp_path, edit(GOOD, {2: f"subject: {subject}"}))
    assert only(findings) == (
        "f.md:2: warning: the subject has 79 characters; inboxes cut it after about 78 [subject-length]"
    )
    assert issue is not None and issue.findings[0].severity is Severity.WARNING
    issue, findings = lint(tmp_path, edit(GOOD, {2: f"subject: {'x' * 78}"}))
    assert findings == []


def test_preheader_missing_or_long_warns(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {3: None}))
    assert only(findings) == (
        "f.md:1: warning: no preheader: the inbox preview will show the email's first words [missing-preheader]"
    )
    assert issue is not None and issue.preheader is None
    _, findings = lint(tmp_path, edit(GOOD, {3: f"preheader: {'y' * 141}"}))
    assert only(findings) == (
        "f.md:3: warning: the preheader has 141 characters; inboxes show about 140 [preheader-length]"
    )


def test_bad_status(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {4: "status: sent"}))
    assert (
        only(findings)
        == 'f.md:4: error: status must be "draft" or "ready", not "sent" [bad-status]'
    )


def test_empty_front_matter(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {2: None, 3: None, 4: "# just a comment"}))
    assert (
        only(findings)
        == "f.md:1: error: the front matter is empty: it needs at least 'subject: …' [empty-front-matter]"
    )


# --- body structure ----------------------------------------------------------------------------------


def test_empty_intro_warns(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {7: "   "}))
    assert only(findings) == (
        "f.md:5: warning: the intro is empty: a line or two before the first article [empty-intro]"
    )
    assert issue is not None and issue.intro == ""


def test_no_articles(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, "\n".join(GOOD.split("\n")[:8]))
    assert only(findings) == (
        "f.md:7: error: the issue has no articles: each starts with a line '## Title' [no-articles]"
    )


def test_six_articles_are_too_many(tmp_path: Path) -> None:
    text = edit(GOOD, {9: "".join(article_n(n) for n in range(1, 6)) + "\n## First article"})
    _, findings = lint(tmp_path, text)
    sixth = 9 + 5 * 9 + 1
    assert (
        only(findings)
        == f"f.md:{sixth}: error: too many articles (6); an issue has at most 5 [too-many-articles]"
    )


def test_empty_title(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {9: "##"}))
    assert (
        only(findings)
        == "f.md:9: error: the article title is empty: write it after '## ' [empty-title]"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# Big", "'# ' headings are not used: an article starts with '## Title'"),
        (
            "#### Deep",
            "'#### ' headings are not used: articles are '## Title', then '### Practice Implications'",
        ),
        (
            "### Methods",
            "unexpected heading: the only '### ' heading is '### Practice Implications'",
        ),
        ("> ## Quoted", "a heading inside a list or quote cannot start an article"),
    ],
)
def test_unexpected_headings(tmp_path: Path, line: str, message: str) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {14: f"The summary.\n\n{line}\n\nMore."}))
    assert only(findings) == f"f.md:16: error: {message} [unexpected-heading]"


def test_setext_heading_is_reported_at_its_underline(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {14: "The summary\nparagraph\n---"}))
    assert findings == [
        'f.md:9: error: article "First article" has no summary: write it under the fields [missing-summary]',
        "f.md:16: error: a line of '---' or '===' under text makes it a heading: "
        "leave a blank line above it [unexpected-heading]",
    ]


def test_heading_without_space_warns(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {14: "##Oops"}))
    assert (
        only(findings)
        == "f.md:14: warning: this is not a heading: put a space after the '#'s [heading-no-space]"
    )
    assert issue is not None


def test_implications_missing_empty_twice_or_early(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {15: None, 16: None, 17: None}))
    assert only(findings) == (
        'f.md:9: error: article "First article" has no "### Practice Implications" section [missing-implications]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {17: ""}))
    assert (
        only(findings)
        == 'f.md:16: error: "### Practice Implications" is empty [empty-implications]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {17: "A.\n\n### Practice Implications\nB."}))
    assert (
        only(findings)
        == 'f.md:19: error: a second "### Practice Implications" heading [duplicate-implications]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {7: "### Practice Implications\nToo early."}))
    assert only(findings) == (
        'f.md:7: error: "### Practice Implications" before the first article'
        " [implications-before-article]"
    )


def test_summary_required(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {13: None, 14: None}))
    assert only(findings) == (
        'f.md:9: error: article "First article" has no summary: write it under the fields [missing-summary]'
    )


# --- article fields ----------------------------------------------------------------------------------


def test_missing_fields(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {10: None, 11: None, 12: None}))
    assert findings == [
        'f.md:9: error: article "First article" has no "Citation:" line [missing-citation]',
        'f.md:9: error: article "First article" needs a "DOI:" or a "Link:" line [missing-doi]',
        'f.md:9: error: article "First article" has no "Topics:" line [missing-topics]',
    ]


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topcs: Training\nTopics: Training"}))
    assert (
        only(findings)
        == 'f.md:12: error: unknown field "Topcs" (did you mean "Topics"?) [unknown-field]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Training\nJournal: Psychotherapy"}))
    assert only(findings) == (
        'f.md:13: error: unknown field "Journal" (fields are Citation, DOI, Link, Topics and Bottom line) [unknown-field]'
    )


def test_duplicate_and_empty_fields(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Training\nDOI: 10.1/other"}))
    assert (
        only(findings)
        == 'f.md:13: error: "DOI:" appears twice (first on line 11) [duplicate-field]'
    )
    _, findings = lint(tmp_path, edit(GOOD, {10: "Citation:", 11: "DOI: 10.1/x\nCitation: ok"}))
    assert findings == ['f.md:10: error: "Citation:" is empty [empty-field]']


def test_field_after_the_summary_started(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {11: None, 13: "A wrapped\nDOI: 10.1002/cpp.2509"}))
    # one mistake, one finding: the DOI is misplaced, not also missing
    assert findings == [
        'f.md:13: error: "DOI:" is not directly under the article title, so it is not a field: '
        "fields come right after '## Title', before the summary [misplaced-field]",
    ]


@pytest.mark.parametrize(
    "doi", ["11.1002/x", "10.abc/x", "10.1002/", "10.1002", "doi:", "cpp.2509"]
)
def test_bad_doi_is_an_error_on_its_line(tmp_path: Path, doi: str) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {11: f"DOI: {doi}"}))
    assert only(findings).startswith(f'f.md:11: error: "{doi}" is not a DOI: expected 10.')


def test_doubtful_doi_warns(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {11: "DOI: 10.1002/cpp.2509 (online first)"}))
    assert only(findings) == (
        "f.md:11: warning: the DOI holds a space: is there something else on this line? [doubtful-doi]"
    )
    assert issue is not None
    _, findings = lint(tmp_path, edit(GOOD, {11: "DOI: 10.1002/cpp.2509."}))
    assert (
        only(findings)
        == 'f.md:11: warning: the DOI ends with ".": is that part of it? [doubtful-doi]'
    )


@pytest.mark.parametrize(
    "link",
    [
        "http://example.org/x",
        "ftp://example.org",
        "https://",
        "example.org",
        "https://a b",
        "https://[x",
    ],
)
def test_link_must_be_https(tmp_path: Path, link: str) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {11: f"Link: {link}"}))
    assert (
        only(findings)
        == f'f.md:11: error: Link must be an https:// address, not "{link}" [bad-link]'
    )


def test_unknown_topic_suggests_the_closest(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Depresion; Training; Quantum Physics"}))
    assert findings == [
        'f.md:12: error: unknown topic "Depresion" (did you mean "Depression and Depressive Symptoms"?) [unknown-topic]',
        'f.md:12: error: unknown topic "Quantum Physics" [unknown-topic]',
    ]


def test_topics_split_on_commas_is_caught(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Training, Empathy"}))
    assert only(findings) == (
        "f.md:12: error: unknown topic \"Training, Empathy\" (separate topics with ';', not ',') [unknown-topic]"
    )
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Attendance, Attrition, Drop-Out"}))
    assert only(findings) == (
        'f.md:12: error: unknown topic "Attendance, Attrition, Drop-Out" '
        '(did you mean "Attendance, Attrition, and Drop-Out"?) [unknown-topic]'
    )


def test_duplicate_topic_warns(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {12: "Topics: Training; training"}))
    assert only(findings) == 'f.md:12: warning: topic "Training" is listed twice [duplicate-topic]'
    assert issue is not None and issue.articles[0].topics == ("Training",)


def test_topics_without_a_name(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {12: "Topics: ; ;"}))
    assert (
        only(findings)
        == "f.md:12: error: no topic named: separate topic names with ';' [empty-topics]"
    )


def test_duplicate_doi_across_articles_warns(tmp_path: Path) -> None:
    text = GOOD + "\n" + article_n(2).replace("10.1000/2", "10.1002/CPP.2509")
    issue, findings = lint(tmp_path, text)
    assert (
        only(findings) == "f.md:19: warning: the same DOI as the article on line 9 [duplicate-doi]"
    )
    assert issue is not None


# --- links in Markdown -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "changed"),
    [
        (7, "This month [click](javascript:alert(1)) here."),
        (9, "## A [title](javascript:alert(1))"),
        (10, "Citation: Doe (2020). [x](data:text/html,hi)"),
        (14, "The summary.\nSecond line ![pic](javascript:x)."),
        (17, "What to do about [it](relative/page.html)."),
    ],
)
def test_unsafe_links_are_errors(tmp_path: Path, line: int, changed: str) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {line: changed}))
    where = line + changed.count("\n")
    assert only(findings).startswith(f"f.md:{where}: error: link ")
    assert only(findings).endswith(
        "is not allowed: use an https:, http: or mailto: address [unsafe-link]"
    )


def test_safe_links_and_html_lookalikes_pass(tmp_path: Path) -> None:
    text = edit(
        GOOD,
        {
            14: "See [it](https://example.org/a?b=1&c=2), [old](http://example.org), "
            "<https://example.org/auto>, [mail](mailto:a@example.org) and <a@example.org>.\n"
            '<a href="javascript:alert(1)">raw HTML is text</a> <script>x</script> a < b & c'
        },
    )
    issue, findings = lint(tmp_path, text)
    # safe, so no error; the autolink's text is its address, which screen readers spell out
    assert [finding.rsplit(" [", 1)[1] for finding in findings] == ["link-text]"]
    assert issue is not None


def test_empty_link_target(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {14: "An [empty]() link."}))
    assert only(findings) == "f.md:14: error: a link without an address [empty-link]"


# --- all findings together, and the file name ----------------------------------------------------------


def test_all_findings_are_reported_together(tmp_path: Path) -> None:
    text = edit(
        GOOD,
        {
            3: "preheadr: x",
            11: "DOI: nope",
            12: "Topics: Depresion",
            14: "[x](javascript:y)",
            17: "",
        },
    )
    _, findings = lint(tmp_path, text, name="2021-13.md")
    # the misspelt "preheadr" is one finding: no follow-on "no preheader" warning
    assert [finding.split(": error")[0].split(": warning")[0] for finding in findings] == [
        "f.md:1",
        "f.md:3",
        "f.md:11",
        "f.md:12",
        "f.md:14",
        "f.md:16",
    ]
    assert findings[0] == (
        'f.md:1: error: the file name "2021-13.md" is not a month: name it YYYY-MM.md (2021-01.md) [file-name]'
    )


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("2021-01.md", "2021-01"),
        ("1999-12.md", "1999-12"),
        ("2021-13.md", None),
        ("2021-00.md", None),
        ("0000-05.md", None),
        ("2021-1.md", None),
        ("draft.md", None),
        ("2021-01-extra.md", None),
    ],
)
def test_month_of(name: str, month: str | None) -> None:
    assert month_of(Path("issues") / name) == month


def test_bad_file_name_is_an_error(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, GOOD, name="draft.md")
    assert issue is None
    assert only(findings) == (
        'f.md:1: error: the file name "draft.md" is not a month: name it YYYY-MM.md (2021-01.md) [file-name]'
    )


def test_display_path_defaults_to_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "issues").mkdir()
    path = write(tmp_path / "issues", edit(GOOD, {4: "status: sent"}))
    monkeypatch.chdir(tmp_path)
    _, findings = lint_issue(path, TOPICS)
    assert str(findings[0]).startswith("issues/2021-01.md:4: error:")
    _, findings = lint_issue(path, TOPICS, display_path="shown.md")
    assert findings[0].path == "shown.md"


# --- read_issue, resolve_issue ------------------------------------------------------------------------


def test_read_issue_returns_issue_with_warnings(tmp_path: Path) -> None:
    issue = read_issue(write(tmp_path, edit(GOOD, {7: None})), TOPICS)
    assert issue.month == "2021-01"
    assert [finding.severity for finding in issue.findings] == [Severity.WARNING]


def test_read_issue_raises_with_every_finding(tmp_path: Path) -> None:
    path = write(tmp_path, edit(GOOD, {4: "status: sent", 12: "Topics: Nope"}))
    with pytest.raises(IssueError) as caught:
        read_issue(path, TOPICS)
    assert len(caught.value.findings) == 2
    assert caught.value.exit_code == 1
    message = str(caught.value)
    assert "has 2 errors" in message
    assert ':4: error: status must be "draft" or "ready", not "sent"' in message
    assert ':12: error: unknown topic "Nope"' in message


def test_resolve_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issues = tmp_path / "issues"
    issues.mkdir()
    path = write(issues, GOOD)
    assert resolve_issue(issues, "2021-01") == path
    assert resolve_issue(issues, str(path)) == path
    monkeypatch.chdir(tmp_path)
    assert resolve_issue(issues, "issues/2021-01.md") == Path("issues/2021-01.md")
    with pytest.raises(
        IssueNotFoundError, match=r"no issue for 2021-02: .*2021-02\.md does not exist"
    ) as caught:
        resolve_issue(issues, "2021-02")
    assert caught.value.exit_code == 2
    with pytest.raises(IssueNotFoundError, match="is a folder"):
        resolve_issue(issues, "issues")
    with pytest.raises(IssueNotFoundError, match=r"no issue file nothing\.md: give a month"):
        resolve_issue(issues, "nothing.md")
