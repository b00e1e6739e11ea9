"""The optional ``Bottom line:`` field: one sentence on one line, located warnings otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.issues.fields import BOTTOM_LINE_MAX
from tests.issuekit import GOOD, edit, lint, only

TOPICS_LINE = 12  # "Topics: …" in GOOD; the bottom line goes right under it, on line 13
TOPICS = "Topics: Therapist Factors; Attendance, Attrition, and Drop-Out"


def with_bottom_line(*lines: str) -> str:
    return edit(GOOD, {TOPICS_LINE: "\n".join((TOPICS, *lines))})


def test_the_field_is_optional(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, GOOD)
    assert findings == [] and issue is not None
    assert issue.articles[0].bottom_line is None


@pytest.mark.parametrize("name", ["Bottom line", "bottom line", "BOTTOM  LINE", "Bottom\tline"])
def test_one_sentence_is_kept_whatever_the_case_and_spacing_of_its_name(
    tmp_path: Path, name: str
) -> None:
    issue, findings = lint(
        tmp_path, with_bottom_line(f"{name}: Ask early; it helps (e.g. at intake).")
    )
    assert findings == [] and issue is not None
    assert issue.articles[0].bottom_line == "Ask early; it helps (e.g. at intake)."
    assert issue.articles[0].summary == "The summary paragraph."


def test_it_may_come_before_the_other_fields(tmp_path: Path) -> None:
    text = edit(GOOD, {10: "Bottom line: Supervision helps.\nCitation: Doe, J. (2020). A study."})
    issue, findings = lint(tmp_path, text)
    assert findings == [] and issue is not None
    assert issue.articles[0].bottom_line == "Supervision helps."


def test_too_long_is_a_located_warning(tmp_path: Path) -> None:
    sentence = "Supervision " + "and peer consultation " * 10 + "help."
    assert len(sentence) > BOTTOM_LINE_MAX
    issue, findings = lint(tmp_path, with_bottom_line(f"Bottom line: {sentence}"))
    assert issue is not None and issue.articles[0].bottom_line == sentence
    assert only(findings) == (
        f"f.md:13: warning: the bottom line has {len(sentence)} characters; keep it to one "
        f"sentence of at most {BOTTOM_LINE_MAX} [bottom-line-length]"
    )


def test_two_sentences_are_a_located_warning(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, with_bottom_line("Bottom line: Ask early. It helps."))
    assert only(findings) == (
        "f.md:13: warning: the bottom line holds more than one sentence: keep one, the rest "
        "belongs in the summary [bottom-line-sentences]"
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "CBT vs. IPT made no difference.",
        "Doe et al. 2020 found it.",
        "Use 2.5 sessions, i.e. More.",
    ],
)
def test_abbreviations_and_decimals_end_no_sentence(tmp_path: Path, sentence: str) -> None:
    _, findings = lint(tmp_path, with_bottom_line(f"Bottom line: {sentence}"))
    assert findings == []


def test_a_wrapped_bottom_line_is_a_located_warning_and_not_lost(tmp_path: Path) -> None:
    text = with_bottom_line("Bottom line: Supervision and own therapy", "help catch burnout early.")
    issue, findings = lint(tmp_path, text)
    assert only(findings) == (
        'f.md:14: warning: this line continues "Bottom line:" but is read as the start of the '
        "summary: keep the bottom line on one line and leave a blank line before the summary "
        "[bottom-line-wrapped]"
    )
    assert issue is not None
    assert issue.articles[0].summary.startswith("help catch burnout early.")


def test_empty_repeated_unsafe_and_misplaced(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, with_bottom_line("Bottom line:"))
    assert only(findings) == 'f.md:13: error: "Bottom line:" is empty [empty-field]'
    _, findings = lint(tmp_path, with_bottom_line("Bottom line: One.", "Bottom line: Two."))
    assert only(findings) == (
        'f.md:14: error: "Bottom line:" appears twice (first on line 13) [duplicate-field]'
    )
    _, findings = lint(tmp_path, with_bottom_line("Bottom line: See [this](javascript:alert(1))."))
    assert only(findings).startswith("f.md:13: error: link") and "[unsafe-link]" in findings[0]
    _, findings = lint(tmp_path, edit(GOOD, {14: "The summary paragraph.\n\nBottom line: Late."}))
    assert only(findings).startswith('f.md:16: error: "Bottom line:" is not directly under')


def test_a_misspelt_name_suggests_the_field(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, with_bottom_line("Bottomline: Ask early."))
    assert only(findings) == (
        'f.md:13: error: unknown field "Bottomline" (did you mean "Bottom line"?) [unknown-field]'
    )


def test_prose_of_two_words_and_a_colon_is_no_field(tmp_path: Path) -> None:
    issue, findings = lint(tmp_path, edit(GOOD, {14: "In short: the summary."}))
    assert findings == [] and issue is not None
    assert issue.articles[0].summary == "In short: the summary."


def test_sample_issues_carry_bottom_lines() -> None:
    from newsletter.issues import read_issue
    from tests.issuekit import REPO
    from tests.issuekit import TOPICS as VOCABULARY

    issue = read_issue(REPO / "issues" / "2021-01.md", VOCABULARY)
    assert all(article.bottom_line for article in issue.articles)
