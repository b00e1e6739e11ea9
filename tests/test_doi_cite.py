"""``newsletter cite``: citeproc-py's APA output pinned for real article shapes (golden files).

citeproc-py has known gaps in APA journal articles (``newsletter/doi/cite.py`` mends the ones
seen); these files show exactly what authors get for many authors, no issue number, an article
number instead of pages, an online-first article without volume, and a correction notice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.doi.cite import format_reference
from newsletter.doi.record import from_crossref
from tests.doikit import (
    CORRECTED,
    MANY_AUTHORS,
    NO_ISSUE,
    ONLINE_FIRST,
    PELUSO,
    StandIn,
    default_works,
    stand_in,
)
from tests.goldenkit import GOLDEN, assert_golden

SHAPES = {
    "two-authors-issue-pages": PELUSO,
    "many-authors": MANY_AUTHORS,
    "no-issue-article-number": NO_ISSUE,
    "online-first-no-volume": ONLINE_FIRST,
    "article-number-no-issue": CORRECTED,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_apa_reference(shape: str, update_golden: bool) -> None:
    record = from_crossref(default_works()[SHAPES[shape]], fetched_at="")
    text = format_reference(record) + "\n" + format_reference(record, markdown=True) + "\n"
    assert_golden(GOLDEN / "cite" / f"{shape}.txt", text, update=update_golden)


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    with stand_in() as running:
        monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", running.url)
        monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", running.url)
        yield running


def test_cite_prints_the_reference_and_stores_the_record(project: Path, service: StandIn) -> None:
    result = CliRunner().invoke(
        main, ["--project", str(project), "cite", f"https://doi.org/{MANY_AUTHORS}"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Author01, G., Author02, G.")
    assert "… Author22, G. (2022)." in result.output
    assert (project / "issues" / ".metadata" / "10.9999%2Fmany.authors.json").is_file()


def test_cite_article_prints_a_skeleton_that_checks_clean(
    project: Path, service: StandIn, update_golden: bool
) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "cite", "--article", NO_ISSUE])
    assert result.exit_code == 0, result.output
    assert_golden(GOLDEN / "cite" / "article-skeleton.md", result.output, update=update_golden)
    skeleton = result.output.replace("Topics: ", "Topics: Common Factors").replace(
        "(summary)", "A summary."
    )
    issue = (
        "---\nsubject: S\npreheader: A preheader long enough not to be warned about, really.\n---\n\nIntro.\n\n"
        + skeleton
    )
    (project / "issues" / "2031-02.md").write_text(issue, encoding="utf-8")
    checked = CliRunner().invoke(main, ["--project", str(project), "check", "2031-02"])
    assert "citation-mismatch" not in checked.output, checked.output


def test_cite_unknown_doi_and_style(project: Path, service: StandIn) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["--project", str(project), "cite", "10.9999/does-not-exist"])
    assert missing.exit_code == 1
    assert "Crossref does not know this DOI" in missing.output
    style = runner.invoke(main, ["--project", str(project), "cite", "--style", "nope", PELUSO])
    assert style.exit_code == 2
    assert 'no citation style "nope"' in style.output


def test_cite_not_a_doi_is_a_usage_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "cite", "hello"])
    assert result.exit_code == 2
