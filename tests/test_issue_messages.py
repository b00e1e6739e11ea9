"""Messages a first-time author understands: each mistake is one finding, at the line to change.

Every test edits one line of a real sample issue and runs the real ``newsletter check`` on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main

ISSUE = "issues/2021-01.md"


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def line_of(project: Path, prefix: str) -> int:
    """The number of the sample issue's first line starting with ``prefix``."""
    lines = (project / ISSUE).read_text(encoding="utf-8").split("\n")
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(prefix))


def summary_line(project: Path) -> int:
    """The first line of the first article's summary (after its fields and a blank line)."""
    lines = (project / ISSUE).read_text(encoding="utf-8").split("\n")
    title = line_of(project, "## ")
    blank = next(n for n in range(title, len(lines)) if not lines[n].strip())
    return blank + 2


def check_with(project: Path, changes: dict[int, str]) -> tuple[int, list[str]]:
    """Replace lines (1-based) of the sample issue, then run `newsletter check --offline` on it."""
    path = project / ISSUE
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, text in changes.items():
        lines[number - 1] = text
    path.write_text("\n".join(lines), encoding="utf-8")
    result = CliRunner().invoke(main, ["--project", str(project), "check", "--offline", ISSUE])
    findings = [line for line in result.output.splitlines() if line.startswith(ISSUE)]
    return result.exit_code, findings


def test_the_sample_issue_is_clean(project: Path) -> None:
    assert check_with(project, {}) == (0, [])


def test_an_unquoted_colon_in_a_value(project: Path) -> None:
    code, findings = check_with(project, {3: "preheader: Read this: now"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:3: error: the front matter is not valid YAML: the value of "preheader" holds '
        '": ", which YAML reads as a second key; put the whole value in quotes: '
        'preheader: "Read this: now" [yaml-syntax]'
    ]


def test_an_unterminated_quote_is_reported_where_it_opens(project: Path) -> None:
    code, findings = check_with(project, {2: 'subject: "Alliance over video'})
    assert code == 1
    assert findings == [
        f'{ISSUE}:2: error: the front matter is not valid YAML: the quote (") that opens the '
        'value of "subject" is never closed; put the whole value in quotes: '
        'subject: "Alliance over video" [yaml-syntax]'
    ]


def test_text_after_a_closing_quote(project: Path) -> None:
    code, findings = check_with(project, {2: "subject: 'Alliance' isn't everything"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:2: error: the front matter is not valid YAML: the value of "subject" starts '
        "with a quote ('), so YAML expects it to end at the next one; put the whole value in "
        "quotes: subject: \"'Alliance' isn't everything\" [yaml-syntax]"
    ]


def test_a_hash_cuts_an_unquoted_value_short(project: Path) -> None:
    code, findings = check_with(project, {2: "subject: Alliance #1: the screen"})
    assert code == 0
    assert findings == [
        f'{ISSUE}:2: warning: "subject" ends at "Alliance": YAML reads " #" as the start of a '
        "comment and drops the rest; if it belongs to the subject, put the whole value in "
        'quotes: subject: "Alliance #1: the screen" [yaml-comment]'
    ]


def test_a_comment_after_the_status_is_fine(project: Path) -> None:
    assert check_with(project, {4: "status: ready  # checked by Ana"}) == (0, [])


def test_a_tab(project: Path) -> None:
    code, findings = check_with(project, {3: "preheader:\tA review of the alliance in therapy."})
    assert code == 1
    assert findings == [
        f"{ISSUE}:3: error: the front matter is not valid YAML: a tab on this line: YAML allows "
        "only spaces here; replace the tab with spaces [yaml-syntax]"
    ]


def test_a_value_starting_with_a_yaml_indicator(project: Path) -> None:
    code, findings = check_with(project, {2: "subject: @home: therapy by video"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:2: error: the front matter is not valid YAML: a value starting with "@" means '
        'something else in YAML; put the whole value in quotes: subject: "@home: therapy by '
        'video" [yaml-syntax]'
    ]


def test_a_misspelt_field_is_one_finding(project: Path) -> None:
    topics = line_of(project, "Topics:")
    code, findings = check_with(project, {topics: "Topcs: Therapist Factors"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:{topics}: error: unknown field "Topcs" (did you mean "Topics"?) [unknown-field]'
    ]


def test_a_misspelt_doi_field_is_one_finding(project: Path) -> None:
    doi = line_of(project, "DOI:")
    code, findings = check_with(project, {doi: "DIO: 10.1002/cpp.2509"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:{doi}: error: unknown field "DIO" (did you mean "DOI"?) [unknown-field]'
    ]


def test_a_misspelt_front_matter_key_is_one_finding(project: Path) -> None:
    code, findings = check_with(project, {2: "subjet: Alliance over video"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:2: error: unknown front matter key "subjet" (did you mean "subject"?) '
        "[unknown-key]"
    ]


def test_an_unknown_field_without_a_likely_meaning_still_misses_the_field(project: Path) -> None:
    code, findings = check_with(project, {line_of(project, "Topics:"): "Keywords: alliance"})
    assert code == 1
    assert [finding.rsplit(" [", 1)[1] for finding in findings] == [
        "missing-topics]",
        "unknown-field]",
    ]


def test_no_space_after_the_colon(project: Path) -> None:
    code, findings = check_with(project, {2: "subject:Alliance over video"})
    assert code == 1
    assert findings == [
        f"{ISSUE}:2: error: the front matter is not valid YAML: put a space after the colon: "
        '"subject: Alliance over video" [yaml-syntax]'
    ]


def test_no_space_after_the_colon_before_a_url(project: Path) -> None:
    code, findings = check_with(project, {3: "preheader:https://example.org/why"})
    assert code == 1
    assert findings == [
        f"{ISSUE}:3: error: the front matter is not valid YAML: put a space after the colon: "
        '"preheader: https://example.org/why" [yaml-syntax]'
    ]


def test_a_line_that_is_not_key_value(project: Path) -> None:
    code, findings = check_with(project, {2: "subject Alliance over video"})
    assert code == 1
    assert findings == [
        f'{ISSUE}:2: error: the front matter is not valid YAML: "subject Alliance over video" '
        'is not a `key: value` line: write the key, ": ", then the value [yaml-syntax]'
    ]


def test_a_field_below_the_summary_is_misplaced_not_also_missing(project: Path) -> None:
    path = project / ISSUE
    lines = path.read_text(encoding="utf-8").split("\n")
    summary = summary_line(project)
    topics = lines.pop(line_of(project, "Topics:") - 1)
    lines.insert(summary - 1, topics)  # the summary's second line, after its first moved up
    path.write_text("\n".join(lines), encoding="utf-8")
    code, findings = check_with(project, {})
    assert code == 1
    assert findings == [
        f'{ISSUE}:{summary}: error: "Topics:" is not directly under the article title, so it is '
        "not a field: fields come right after '## Title', before the summary [misplaced-field]"
    ]


def test_an_article_title_without_a_space_is_one_finding(project: Path) -> None:
    title = line_of(project, "## ")
    code, findings = check_with(project, {title: "##Burnout Among Psychological Practitioners"})
    assert code == 1
    assert findings == [
        f"{ISSUE}:{title}: error: this article title is not a heading, so the fields under it "
        "are not read: put a space after '##' [article-heading-no-space]"
    ]


def test_a_level_one_article_title_is_one_finding(project: Path) -> None:
    title = line_of(project, "## ")
    code, findings = check_with(project, {title: "# Burnout Among Psychological Practitioners"})
    assert code == 1
    assert findings == [
        f"{ISSUE}:{title}: error: '# ' headings are not used: an article starts with '## Title' "
        "[unexpected-heading]"
    ]


def test_hashes_without_a_space_in_prose_stay_a_warning(project: Path) -> None:
    summary = summary_line(project)
    code, findings = check_with(project, {summary: "##MeToo and the clinic"})
    assert code == 0
    assert findings == [
        f"{ISSUE}:{summary}: warning: this is not a heading: put a space after the '#'s "
        "[heading-no-space]"
    ]


@pytest.mark.parametrize(
    ("heading", "message"),
    [
        (
            "### Practice Implication",
            '"### Practice Implication" should read "### Practice Implications"',
        ),
        ("### Implications", '"### Implications" should read "### Practice Implications"'),
        (
            "## Practice Implications",
            '"## Practice Implications" needs three #: "### Practice Implications" (with two it '
            "starts an article)",
        ),
    ],
)
def test_a_mistyped_practice_implications_heading_is_one_finding(
    project: Path, heading: str, message: str
) -> None:
    lines = (project / ISSUE).read_text(encoding="utf-8").split("\n")
    number = lines.index("### Practice Implications") + 1
    code, findings = check_with(project, {number: heading})
    assert code == 1
    assert findings == [f"{ISSUE}:{number}: error: {message} [implications-heading]"]
