"""DOI records: the Crossref and Unpaywall clients against local stand-ins, the store, ``check``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.doi.client import Client, NotFound, Unreachable
from newsletter.doi.compare import check_issue_dois, mismatches
from newsletter.doi.record import CORRECTION, RETRACTION, Author, Record, from_crossref
from newsletter.doi.store import MetadataStore
from newsletter.issues import load_topics, read_issue
from tests.doikit import (
    CORRECTED,
    CORRECTION_NOTICE,
    DOWN,
    FLAKY,
    MISSING,
    PELUSO,
    RETRACTED,
    RETRACTION_NOTICE,
    SLOW,
    StandIn,
    closed_port_url,
    default_works,
    stand_in,
)

ISSUE = """---
subject: A month of DOIs
preheader: An issue whose articles point to the stand-in's works, for the DOI checks.
status: ready
---

An intro.

## {title}
Citation: {citation}
DOI: {doi}
Topics: Common Factors

A summary.

### Practice Implications
Implications.
"""

PELUSO_CITATION = (
    "Peluso, P. R., & Freund, R. R. (2018). Therapist and client emotional expression and "
    "psychotherapy outcomes: A meta-analysis. *Psychotherapy, 55*(4), 461–472."
)


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args], catch_exceptions=False)


def client(service: StandIn, **options: float) -> Client:
    return Client(
        mailto="editor@example.org",
        crossref_url=service.url,
        unpaywall_url=service.url,
        backoff=0.01,
        **options,  # type: ignore[arg-type]
    )


def write_issue(
    project: Path, month: str, *, doi: str, citation: str, title: str = "A study"
) -> Path:
    path = project / "issues" / f"{month}.md"
    path.write_text(ISSUE.format(title=title, citation=citation, doi=doi), encoding="utf-8")
    return path


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    with stand_in() as running:
        monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", running.url)
        monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", running.url)
        yield running


# --- the clients ----------------------------------------------------------------------------


def test_crossref_record_with_free_copy_and_polite_user_agent(service: StandIn) -> None:
    record = client(service).record(PELUSO)
    assert record.title.startswith("Therapist and client emotional expression")
    assert record.authors[0] == Author("Peluso", "Paul R.")
    assert (record.journal, record.year, record.volume, record.issue, record.page) == (
        "Psychotherapy",
        2018,
        "55",
        "4",
        "461-472",
    )
    assert record.free_url == "https://repository.example/peluso.pdf"
    assert record.fetched_at.endswith("Z")
    paths = [path for path, _, _ in service.requests]
    assert paths == ["/works/10.1037%2Fpst0000165", "/v2/10.1037/pst0000165"]
    assert all("mailto:editor@example.org" in agent for _, agent, _ in service.requests)
    assert service.requests[1][2] == {"email": "editor@example.org"}


def test_retraction_from_publisher_and_retraction_watch_is_one_update(service: StandIn) -> None:
    record = client(service).record(RETRACTED)
    assert [(u.kind, u.doi, u.date) for u in record.updates] == [
        (RETRACTION, RETRACTION_NOTICE, "2021-05-04")
    ]
    assert record.free_url is None


def test_correction_and_article_number(service: StandIn) -> None:
    record = client(service).record(CORRECTED)
    assert record.number == "e17"
    assert [(u.kind, u.doi, u.date) for u in record.notices] == [
        (CORRECTION, CORRECTION_NOTICE, "2021-02-09")
    ]


def test_unknown_doi_is_not_found(service: StandIn) -> None:
    with pytest.raises(NotFound):
        client(service).record(MISSING)


def test_a_503_is_tried_again_then_answers(service: StandIn) -> None:
    assert client(service).record(FLAKY).title == "A flaky answer"
    assert [path for path, _, _ in service.requests].count("/works/10.9999%2Fflaky") == 2


def test_a_service_that_stays_down_is_unreachable_after_bounded_attempts(service: StandIn) -> None:
    with pytest.raises(Unreachable, match="503"):
        client(service).record(DOWN)
    assert len(service.requests) == 3


def test_a_slow_answer_times_out(service: StandIn) -> None:
    service.slow_seconds = 2.0
    started = time.monotonic()
    with pytest.raises(Unreachable):
        client(service, timeout=0.3, attempts=2).record(SLOW)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.9


def test_no_network_fails_at_once() -> None:
    nowhere = closed_port_url()
    started = time.monotonic()
    with pytest.raises(Unreachable):
        Client("e@example.org", crossref_url=nowhere, unpaywall_url=nowhere).record(PELUSO)
    assert time.monotonic() - started < 1


def test_base_urls_come_from_the_environment() -> None:
    env = {"NEWSLETTER_CROSSREF_URL": "http://127.0.0.1:1/", "NEWSLETTER_UNPAYWALL_URL": ""}
    made = Client.from_env("e@example.org", env)
    assert made.crossref_url == "http://127.0.0.1:1"
    assert made.unpaywall_url == "https://api.unpaywall.org"
    assert Client.from_env("e@example.org", {}).crossref_url == "https://api.crossref.org"


# --- the store ---------------------------------------------------------------------------------


def test_store_round_trip_is_sorted_json_named_for_the_doi(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / ".metadata")
    record = from_crossref(default_works()[RETRACTED], fetched_at="2026-01-02T03:04:05Z")
    path = store.put(record)
    assert path.name == "10.9999%2Fretracted.2019.1.json"
    data = json.loads(path.read_text())
    assert list(data) == sorted(data)
    assert data["updates"][0]["type"] == "retraction"
    assert store.get(RETRACTED.upper()) == record
    assert store.get(MISSING) is None


def test_sample_issues_records_are_hand_written_and_agree() -> None:
    repo = Path(__file__).resolve().parent.parent
    store = MetadataStore(repo / "issues" / ".metadata")
    topics = load_topics(repo / "issues" / "topics.yaml")
    for path in sorted((repo / "issues").glob("*.md")):
        issue = read_issue(path, topics)
        result = check_issue_dois(issue, store, path=path.name)
        assert result.findings == []
        for article in issue.articles:
            record = store.get(article.doi or "")
            assert record is not None and "by hand" in record.note


# --- comparing ---------------------------------------------------------------------------------


def _record(**changes: object) -> Record:
    base = from_crossref(default_works()[PELUSO], fetched_at="")
    return Record(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_matching_citation_has_no_mismatch() -> None:
    assert mismatches(PELUSO_CITATION, _record()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"issued": (2019,)}, "year 2019"),
        ({"authors": (Author("Pelusso", "P."),)}, 'first author "Pelusso"'),
        ({"journal": "Psychotherapy Research"}, 'journal "Psychotherapy Research"'),
        ({"title": "Something else entirely about couples"}, "title"),
    ],
)
def test_each_kind_of_mismatch(changes: dict[str, object], expected: str) -> None:
    found = mismatches(PELUSO_CITATION, _record(**changes))
    assert len(found) == 1 and found[0].startswith(expected)


def test_title_is_compared_fuzzily() -> None:
    citation = PELUSO_CITATION.replace("psychotherapy outcomes", "psychotherapy outcome")
    assert mismatches(citation, _record()) == []


# --- newsletter check --------------------------------------------------------------------------


def test_check_fetches_and_stores_a_missing_record(project: Path, service: StandIn) -> None:
    (project / "issues" / ".metadata" / "10.1037%2Fpst0000165.json").unlink()
    write_issue(project, "2031-01", doi=PELUSO, citation=PELUSO_CITATION)
    result = run(project, "check", "2031-01")
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings" in result.output
    assert (project / "issues" / ".metadata" / "10.1037%2Fpst0000165.json").is_file()
    service.requests.clear()
    assert run(project, "check", "2031-01").exit_code == 0
    assert service.requests == []  # the stored record answers: reproducible, offline


def test_check_warns_at_the_citation_line_with_the_expected_text(
    project: Path, service: StandIn
) -> None:
    write_issue(project, "2031-01", doi=PELUSO, citation=PELUSO_CITATION.replace("2018", "2017"))
    result = run(project, "check", "2031-01")
    assert result.exit_code == 0
    assert (
        "issues/2031-01.md:10: warning: the Citation does not match the DOI's record (year 2018)"
        in result.output
    )
    assert (
        "expected: Peluso, P. R., & Freund, R. R. (2018). Therapist and client emotional expression and psychotherapy outcomes: A meta-analysis. Psychotherapy. [citation"
        in result.output
    )
    assert "[citation-mismatch]" in result.output


def test_a_doi_that_does_not_resolve_is_an_error(project: Path, service: StandIn) -> None:
    write_issue(project, "2031-01", doi=MISSING, citation="Nobody, N. (2020). Nothing. *Void*.")
    result = run(project, "check", "2031-01")
    assert result.exit_code == 1
    assert "error: the DOI 10.9999/does-not-exist does not resolve" in result.output
    assert "[doi-not-found]" in result.output


def test_a_retracted_article_is_an_error_naming_the_notice(project: Path, service: StandIn) -> None:
    citation = (
        "Fabricius, A. (2019). A retracted trial of something. *Journal of Stand-ins, 3*, 1–9."
    )
    write_issue(project, "2031-01", doi=RETRACTED, citation=citation)
    result = run(project, "check", "2031-01")
    assert result.exit_code == 1
    assert f"was retracted (notice {RETRACTION_NOTICE}, 2021-05-04)" in result.output
    assert "[retracted]" in result.output


def test_a_corrected_article_is_a_warning(project: Path, service: StandIn) -> None:
    citation = (
        "Korr, B. (2020). A corrected study of something else. *Journal of Stand-ins, 4*, e17."
    )
    write_issue(project, "2031-01", doi=CORRECTED, citation=citation)
    result = run(project, "check", "2031-01")
    assert result.exit_code == 0
    assert f"has a correction (notice {CORRECTION_NOTICE}, 2021-02-09)" in result.output
    assert "1 warning" in result.output


def test_offline_check_is_one_warning_and_build_still_works(project: Path) -> None:
    write_issue(project, "2031-01", doi=PELUSO.replace("165", "166"), citation=PELUSO_CITATION)
    result = run(project, "check", "2031-01")
    assert result.exit_code == 0
    assert result.output.count("[doi-not-checked]") == 1
    assert "1 DOI not checked: no network" in result.output
    assert run(project, "build", "2031-01").exit_code == 0


def test_check_offline_flag_fetches_nothing(project: Path, service: StandIn) -> None:
    write_issue(project, "2031-01", doi=CORRECTED, citation=PELUSO_CITATION)
    result = run(project, "check", "--offline", "2031-01")
    assert "no stored record (run `newsletter doi refresh`)" in result.output
    assert service.requests == []


def test_sample_issues_check_clean_without_network(project: Path) -> None:
    result = run(project, "check", "2020-11", "2020-12", "2021-01")
    assert result.exit_code == 0
    assert "3 files checked: 0 errors, 0 warnings" in result.output


# --- newsletter doi refresh --------------------------------------------------------------------


def test_refresh_updates_the_records_of_an_issue(project: Path, service: StandIn) -> None:
    write_issue(project, "2031-01", doi=PELUSO, citation=PELUSO_CITATION)
    first = run(project, "doi", "refresh", "2031-01")
    assert first.exit_code == 0, first.output
    assert "issues/2031-01.md: 10.1037/pst0000165: " in first.output
    again = run(project, "doi", "refresh", "2031-01")
    assert "10.1037/pst0000165: unchanged" in again.output


def test_refresh_without_network_is_a_one_line_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "doi", "refresh", "--all"])
    assert result.exit_code == 1
    assert "error: cannot reach Crossref" in result.output


def test_refresh_needs_an_issue_or_all(project: Path) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "doi", "refresh"])
    assert result.exit_code == 2
