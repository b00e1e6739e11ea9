"""References readers can save (RIS, BibTeX, Highwire meta tags) and ``doi watch`` after sending."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.archive import write_archive
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.doi.export import bibtex, highwire_tags, ris
from newsletter.doi.record import Author, Record
from newsletter.doi.store import MetadataStore
from newsletter.issues import load_topics, read_issue
from newsletter.models import LedgerStatus
from newsletter.render import render_issue
from newsletter.web.app import create_app
from newsletter.web.archive import export_static
from tests.doikit import CORRECTION_NOTICE, StandIn, notice, stand_in, work
from tests.goldenkit import GOLDEN, assert_golden
from tests.webkit import archive_fixture, in_process

MONTH = "2020-11"
PELUSO = "10.1037/pst0000165"
SIMPSON = "10.1002/cpp.2521"


@pytest.fixture
def archived(settings: Settings) -> Settings:
    issue = read_issue(settings.issues_dir / f"{MONTH}.md", load_topics(settings.topics_file))
    archive_fixture(
        settings.root,
        MONTH,
        issue.source,
        subject=issue.subject,
        finished_at="2020-11-03T14:00:00+00:00",
    )
    return settings


@pytest.fixture
def site(archived: Settings) -> Iterator[TestClient]:
    with in_process(create_app(archived)) as http:
        yield http


def sample_records(settings: Settings) -> list[Record]:
    store = MetadataStore(settings.issues_dir / ".metadata")
    return [r for r in (store.get(SIMPSON), store.get(PELUSO)) if r is not None]


def test_ris_and_bibtex_from_the_stored_records(settings: Settings, update_golden: bool) -> None:
    records = sample_records(settings)
    assert_golden(GOLDEN / "references" / "2020-11.ris", ris(records), update=update_golden)
    assert_golden(GOLDEN / "references" / "2020-11.bib", bibtex(records), update=update_golden)


def test_bibtex_escapes_and_unique_keys() -> None:
    record = Record(
        doi="10.1/x_y",
        title="Costs & 100% {braces}",
        authors=(Author("Müller", "J."),),
        journal="J_T",
        issued=(2020,),
    )
    text = bibtex([record, record])
    assert r"{Costs \& 100\% \{braces\}}" in text
    assert "@article{muller2020costs," in text and "@article{muller2020costsa," in text
    assert "journal = {J\\_T}" in text


def test_highwire_tags_per_article(settings: Settings) -> None:
    tags = highwire_tags(sample_records(settings))
    assert (
        '<meta name="citation_title" content="Videotherapy and therapeutic alliance in the age of COVID-19">'
        in tags
    )
    assert tags.count('name="citation_author"') == 7
    assert '<meta name="citation_author" content="Peluso, Paul R.">' in tags
    assert '<meta name="citation_doi" content="10.1037/pst0000165">' in tags
    assert '<meta name="citation_journal_title" content="Psychotherapy">' in tags
    assert '<meta name="citation_publication_date" content="2018">' in tags
    assert '<meta name="citation_firstpage" content="461">' in tags


def test_the_archive_page_carries_meta_tags_and_reference_downloads(site: TestClient) -> None:
    page = site.get(f"/archive/{MONTH}/")
    assert page.status_code == 200
    head = page.text.split("</head>")[0]
    assert '<meta name="citation_doi" content="10.1002/cpp.2521">' in head
    assert 'href="references.ris"' in head and 'href="references.bib"' in head
    assert '<a href="references.ris" download>RIS</a>' in page.text
    ris_file = site.get(f"/archive/{MONTH}/references.ris")
    assert ris_file.status_code == 200
    assert ris_file.headers["content-type"].startswith("application/x-research-info-systems")
    assert "DO  - 10.1037/pst0000165" in ris_file.text
    bib = site.get(f"/archive/{MONTH}/references.bib")
    assert bib.status_code == 200 and "@article{peluso2018therapist," in bib.text
    assert site.get(f"/archive/{MONTH}/references.txt").status_code == 404
    assert site.get("/archive/2019-01/references.ris").status_code == 404


def test_the_static_export_writes_the_references(archived: Settings, tmp_path: Path) -> None:
    written = export_static(archived, tmp_path / "site")
    names = {path.relative_to(tmp_path / "site").as_posix() for path in written}
    assert {f"{MONTH}/references.ris", f"{MONTH}/references.bib", f"{MONTH}/index.html"} <= names
    page = (tmp_path / "site" / MONTH / "index.html").read_text()
    assert 'name="citation_title"' in page


def test_a_send_keeps_the_records_in_the_archive(settings: Settings) -> None:
    issue = read_issue(settings.issues_dir / f"{MONTH}.md", load_topics(settings.topics_file))
    rendered = render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )

    class Info:
        subject = issue.subject
        transport = "outbox"
        from datetime import UTC, datetime

        started_at = datetime(2020, 11, 3, tzinfo=UTC)
        finished_at = started_at

    folder = write_archive(
        settings.archive_dir,
        issue,
        rendered,
        links=settings.links,
        record=Info(),
        counts={LedgerStatus.SENT: 1},
    )
    kept = MetadataStore(folder / "records")
    assert kept.get(PELUSO) is not None and kept.get(SIMPSON) is not None


# --- doi watch ---------------------------------------------------------------------------------


def corrected_peluso() -> StandIn:
    works = {
        PELUSO: work(
            PELUSO,
            "Therapist and client emotional expression and psychotherapy outcomes: A meta-analysis",
            [("Peluso", "Paul R."), ("Freund", "Rachel R.")],
            "Psychotherapy",
            2018,
            volume="55",
            issue="4",
            page="461-472",
            updated_by=[notice("correction", CORRECTION_NOTICE, (2021, 2, 9), "publisher")],
        ),
        SIMPSON: work(
            SIMPSON,
            "Videotherapy and therapeutic alliance in the age of COVID-19",
            [("Simpson", "Susan")],
            "Clinical Psychology & Psychotherapy",
            2020,
        ),
    }
    return StandIn(works=works, free={})


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    with stand_in(corrected_peluso()) as service:
        monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", service.url)
        monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", service.url)
        yield service


def test_watch_lists_a_new_correction_and_the_archive_page_shows_it(
    archived: Settings, online: StandIn
) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(archived.root), "doi", "watch"])
    assert result.exit_code == 0, result.output
    assert f"2020-11: {PELUSO}: new correction {CORRECTION_NOTICE} (2021-02-09)" in result.output
    assert "2 DOI(s) of the archive checked: 1 new change" in result.output
    kept = MetadataStore(archived.archive_dir / MONTH / "records").get(PELUSO)
    assert kept is not None and kept.notices
    with in_process(create_app(archived)) as http:
        page = http.get(f"/archive/{MONTH}/").text
    body = page.split("<body>", 1)[1]
    assert re.search(
        r"<strong>Correction</strong> \(2021-02-09\) of “Expressed Emotion and How Therapy Turns Out”: "
        r'<a href="https://doi.org/10.9999/correction.2021.3">read the notice</a>',
        body,
    )
    again = runner.invoke(main, ["--project", str(archived.root), "doi", "watch"])
    assert "0 new changes" in again.output


def test_watch_without_network_says_so(archived: Settings) -> None:
    result = CliRunner().invoke(main, ["--project", str(archived.root), "doi", "watch"])
    assert result.exit_code == 1
    assert "cannot reach Crossref" in result.output


def test_the_monthly_scheduler_job_runs_the_watch(
    archived: Settings, online: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    from newsletter.schedule import _watch_dois

    with caplog.at_level(logging.INFO, logger="newsletter.schedule"):
        _watch_dois(archived)
    messages = [record.getMessage() for record in caplog.records]
    assert any("doi watch: 2020-11: 10.1037/pst0000165: new correction" in m for m in messages)
