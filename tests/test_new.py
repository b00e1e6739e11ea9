"""``newsletter new``: a draft issue from the month, schedule.yaml and DOIs, checked for its gaps.

Every test runs the real command on a copy of this repository's project; the DOI look-ups go to
the Crossref stand-in of ``tests/doikit.py``, to one answering 503, or to a closed port.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from tests.doikit import DOWN, MANY_AUTHORS, MISSING, PELUSO, StandIn, stand_in
from tests.goldenkit import GOLDEN, assert_golden

TOPIC = "Common Factors"


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in messages are shown relative to the working directory, as an author sees them."""
    monkeypatch.chdir(project)


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    with stand_in() as running:
        monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", running.url)
        monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", running.url)
        yield running


def fill_in(text: str) -> str:
    """The draft as an author finishes it: every placeholder replaced by real words."""
    replacements = {
        "[TODO: the subject readers see, under 78 characters]": "Emotion in the session",
        "[TODO: one sentence shown after the subject in the inbox]": (
            "A meta-analysis of expressed emotion and how therapy turns out."
        ),
        '[TODO: a line or two to open the issue: "This month …"]': "This month: feelings.",
        "[TODO: topic names from issues/topics.yaml, separated by ;]": TOPIC,
        "[TODO: the summary: what the study asked, did and found, in a few paragraphs]": (
            "Thirteen studies of therapists and 42 of clients."
        ),
        "[TODO: what the findings mean for practice]": "Work with feelings.",
        "[TODO: what a busy clinician should take away, in one sentence (or delete this line)]": (
            "Emotion expressed in the session goes with better outcomes."
        ),
    }
    for placeholder, words in replacements.items():
        text = text.replace(placeholder, words)
    return text


def test_new_writes_a_draft_from_schedule_and_crossref(project: Path, service: StandIn) -> None:
    # PELUSO's record is stored in issues/.metadata/; MANY_AUTHORS's is fetched and stored
    result = run(
        project, "new", "2031-03", "--doi", f"https://doi.org/{PELUSO}", "--doi", MANY_AUTHORS
    )
    assert result.exit_code == 0, result.output
    text = (project / "issues" / "2031-03.md").read_text(encoding="utf-8")
    # schedule.yaml: the first Tuesday at 09:00 in Toronto; sender.name names the newsletter
    assert "# PPRNet Monthly, March 2031" in text
    assert (
        "# By schedule.yaml it goes out Tuesday 4 March 2031 at 09:00 (America/Toronto) if its "
        "status\n# is ready by then; otherwise as soon as it is, within 7d.\n"
    ) in text
    assert "status: draft\n" in text
    assert (
        "## Therapist and client emotional expression and psychotherapy outcomes: A meta-analysis"
        "\nCitation: Peluso, P. R., & Freund, R. R. (2018). Therapist and client emotional "
        "expression and psychotherapy outcomes: A meta-analysis. *Psychotherapy*, *55*(4), "
        f"461–472.\nDOI: {PELUSO}\n"
    ) in text
    assert "## A consortium's trial with twenty-two authors\nCitation: Author01, G." in text
    assert f"*Journal of Consortia*, *9*(1), 1–20.\nDOI: {MANY_AUTHORS}\n" in text
    assert "wrote issues/2031-03.md: 2 articles (2 from Crossref)" in result.output
    assert [path for path, _, _ in service.requests if path.startswith("/works/")] == [
        "/works/10.9999%2Fmany.authors"
    ]
    assert (project / "issues" / ".metadata" / "10.9999%2Fmany.authors.json").is_file()


def test_the_whole_draft(project: Path, service: StandIn, update_golden: bool) -> None:
    """The draft as an author opens it, pinned whole (tests/golden/new/)."""
    result = run(project, "new", "2031-03", "--doi", MANY_AUTHORS, "--doi", MISSING)
    assert result.exit_code == 0, result.output
    text = (project / "issues" / "2031-03.md").read_text(encoding="utf-8")
    assert_golden(GOLDEN / "new" / "2031-03.md", text, update=update_golden)


def test_the_draft_checks_with_one_warning_per_placeholder(project: Path, service: StandIn) -> None:
    assert run(project, "new", "2031-03", "--doi", PELUSO).exit_code == 0
    checked = run(project, "check", "2031-03")
    assert checked.exit_code == 0, checked.output
    lines = checked.output.splitlines()
    placeholders = [line for line in lines if line.endswith("[placeholder]")]
    assert [line.split(": warning")[0] for line in placeholders] == [
        "issues/2031-03.md:6",  # subject
        "issues/2031-03.md:7",  # preheader
        "issues/2031-03.md:11",  # intro
        "issues/2031-03.md:16",  # Topics
        "issues/2031-03.md:17",  # Bottom line
        "issues/2031-03.md:19",  # summary
        "issues/2031-03.md:22",  # Practice Implications
    ]
    assert placeholders[3] == (
        "issues/2031-03.md:16: warning: to fill in: [TODO: topic names from issues/topics.yaml, "
        "separated by ;] [placeholder]"
    )
    assert lines[-1] == "1 file checked: 0 errors, 7 warnings", checked.output


def test_a_ready_issue_with_a_placeholder_is_refused(project: Path, service: StandIn) -> None:
    assert run(project, "new", "2031-03", "--doi", PELUSO).exit_code == 0
    path = project / "issues" / "2031-03.md"
    finished = fill_in(path.read_text(encoding="utf-8")).replace("status: draft", "status: ready")
    path.write_text(finished.replace("Work with feelings.", "[TODO: later]"), encoding="utf-8")
    checked = run(project, "check", "2031-03")
    assert checked.exit_code == 1
    assert (
        "issues/2031-03.md:22: error: [TODO: later] is still to be written, and the issue is "
        "ready: fill it in (or set status: draft) [placeholder-ready]"
    ) in checked.output
    built = run(project, "build", "2031-03")
    assert built.exit_code == 1 and "placeholder-ready" in built.output
    assert not (project / "build" / "2031-03").exists()
    path.write_text(finished, encoding="utf-8")
    assert run(project, "check", "2031-03").exit_code == 0
    assert run(project, "build", "2031-03").exit_code == 0


def test_a_draft_with_placeholders_is_never_sent_to_readers(
    project: Path, service: StandIn
) -> None:
    """Placeholders are warnings in a draft, yet `send --yes` of the draft refuses to send it."""
    assert run(project, "new", "2031-03", "--doi", PELUSO).exit_code == 0
    assert run(project, "subscribers", "add", "reader@example.org").exit_code == 0
    sent = run(project, "send", "2031-03", "--yes")
    assert sent.exit_code == 1, sent.output
    assert "2031-03: 7 [TODO: …] placeholder(s) still to be written" in sent.output
    assert "nothing was sent" in sent.output
    assert not list((project / "outbox").glob("*/*"))
    path = project / "issues" / "2031-03.md"
    path.write_text(fill_in(path.read_text(encoding="utf-8")), encoding="utf-8")
    finished = run(project, "send", "2031-03", "--yes")  # still a draft, now with no gaps
    assert finished.exit_code == 0, finished.output
    assert len(list((project / "outbox").glob("*/*"))) == 1


def test_unknown_doi_and_no_network_give_a_doi_only_skeleton(
    project: Path, service: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(project, "new", "2031-04", "--doi", MISSING, "--doi", DOWN)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings[0] == (
        f"warning: {MISSING}: Crossref does not know this DOI; its skeleton has the DOI only "
        f"(`newsletter cite --article {MISSING}` prints title and citation later)"
    )
    assert warnings[1].startswith(f"warning: {DOWN}: cannot reach Crossref (")
    text = (project / "issues" / "2031-04.md").read_text(encoding="utf-8")
    assert text.count("## [TODO: the article title]\nCitation: [TODO: the full reference") == 2
    assert f"DOI: {MISSING}\n" in text and f"DOI: {DOWN}\n" in text
    checked = run(project, "check", "--offline", "2031-04")
    assert checked.exit_code == 0, checked.output


def test_no_network_at_all(project: Path) -> None:
    # the autouse fixture points Crossref at a closed port
    result = run(project, "new", "2031-05", "--doi", MANY_AUTHORS)
    assert result.exit_code == 0, result.output
    assert f"warning: {MANY_AUTHORS}: cannot reach Crossref (" in result.output
    assert "2 articles" not in result.output
    assert "1 article (0 from Crossref)" in result.output


def test_a_stored_record_is_used_without_the_network(project: Path) -> None:
    # issues/.metadata/ of the repository holds the record of 10.1037/pst0000165
    result = run(project, "new", "2031-05", "--offline", "--doi", PELUSO)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    text = (project / "issues" / "2031-05.md").read_text(encoding="utf-8")
    assert "Citation: Peluso, P. R., & Freund, R. R. (2018)." in text


def test_without_dois_one_empty_article(project: Path) -> None:
    assert run(project, "new", "2031-06").exit_code == 0
    checked = run(project, "check", "--offline", "2031-06")
    assert checked.exit_code == 0, checked.output
    assert (
        checked.output.count("[placeholder]") == 10
    )  # subject … title, citation, DOI, bottom line


def test_an_existing_issue_is_never_replaced(project: Path, service: StandIn) -> None:
    path = project / "issues" / "2021-01.md"
    before = path.read_bytes()
    result = run(project, "new", "2021-01", "--doi", PELUSO)
    assert result.exit_code == 1
    assert result.output == (
        "error: issues/2021-01.md already exists: edit it, or remove it to start over\n"
    )
    assert path.read_bytes() == before
    assert service.requests == []  # refused before anything was looked up
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".2021")) == []


@pytest.mark.parametrize("month", ["2031-3", "2031-13", "March", "2031-03-01"])
def test_not_a_month_is_a_usage_error(project: Path, month: str) -> None:
    result = run(project, "new", month)
    assert result.exit_code == 2
    assert f"{month!r} is not a month: use YYYY-MM, e.g. 2021-01" in result.output
    assert sorted(p.name for p in (project / "issues").glob("*.md")) == [
        "2020-11.md",
        "2020-12.md",
        "2021-01.md",
    ]


def test_a_month_of_the_right_shape_says_what_is_wrong(project: Path) -> None:
    result = run(project, "new", "2031-13")
    assert result.exit_code == 2
    assert "'2031-13' is not a month: use YYYY-MM, e.g. 2021-01 (the month must be 01 to 12)" in (
        result.output
    )


def test_bad_doi_and_too_many_are_usage_errors(project: Path) -> None:
    assert run(project, "new", "2031-03", "--doi", "hello").exit_code == 2
    many = [arg for n in range(6) for arg in ("--doi", f"10.9999/n{n}")]
    result = run(project, "new", "2031-03", *many)
    assert result.exit_code == 2 and "at most 5 articles" in result.output
    assert not (project / "issues" / "2031-03.md").exists()


def test_a_failed_write_leaves_nothing(project: Path) -> None:
    issues = project / "issues"
    shutil.rmtree(issues)
    issues.write_text("not a folder", encoding="utf-8")
    result = run(project, "new", "2031-03")
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot write issues/2031-03.md: ")
    assert issues.read_text(encoding="utf-8") == "not a folder"
    assert sorted(p.name for p in project.iterdir()) == [
        "issues",
        "schedule.yaml",
        "subscribers",
        "templates",
    ]


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["new", "--help"])
    assert "  Examples:\n    newsletter new 2021-03\n" in result.output


def test_only_real_gaps_count_as_placeholders(project: Path) -> None:
    """A [TODO …] in a YAML comment or a code block is not a gap; one in any other line is."""
    path = project / "issues" / "2021-01.md"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1:1] = ["# [TODO: a note to self in a comment]"]
    implications = lines.index("### Practice Implications")
    lines[implications:implications] = ["```", "[TODO: shown as code]", "```", ""]
    gap = implications + 5  # the first line under the heading, now moved down by 4
    lines[gap] += " [TODO: check this figure]"
    path.write_text("\n".join(lines), encoding="utf-8")
    checked = run(project, "check", "--offline", "2021-01")
    assert checked.exit_code == 1
    assert [line for line in checked.output.splitlines() if line.startswith("issues/")] == [
        f"issues/2021-01.md:{gap + 1}: error: [TODO: check this figure] is still to be written, "
        "and the issue is ready: fill it in (or set status: draft) [placeholder-ready]"
    ]
