"""A retracted article stops ``newsletter send`` and the scheduler; the scheduler re-checks online."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.doi.store import MetadataStore
from newsletter.monthly import Outcome, run_monthly
from tests.dbkit import db
from tests.doikit import RETRACTION_NOTICE, StandIn, notice, stand_in, work
from tests.schedkit import ACTIVE, add_people, outbox_recipients, write_issue

TORONTO = ZoneInfo("America/Toronto")
MONTH = "2026-12"
FIRED = datetime(2026, 12, 1, 9, tzinfo=TORONTO)
SUMMERS = "10.1002/cpp.2509"  # an article of the sample issue 2021-01
BRUGNERA = "10.1080/10503307.2020.1762946"  # the other one


def retract_stored(project: Path, doi: str = SUMMERS) -> None:
    path = MetadataStore(project / "issues" / ".metadata").path(doi)
    data = json.loads(path.read_text())
    data["updates"] = [{"type": "retraction", "DOI": RETRACTION_NOTICE, "date": "2021-05-04"}]
    path.write_text(json.dumps(data))


def run(settings: Settings) -> Outcome:
    decision = run_monthly(
        settings, db(settings), MONTH, now=FIRED + timedelta(minutes=1), fired_at=FIRED
    )
    return decision.outcome


@pytest.fixture
def ready(project: Path, settings: Settings) -> Settings:
    write_issue(project, MONTH, "ready")
    add_people(settings)
    return settings


def test_send_refuses_an_issue_with_a_retracted_article(project: Path, ready: Settings) -> None:
    retract_stored(project)
    result = CliRunner().invoke(main, ["--project", str(project), "send", MONTH, "--yes"])
    assert result.exit_code == 1
    assert f"was retracted (notice {RETRACTION_NOTICE}, 2021-05-04)" in result.output
    assert "1 retracted article(s); nothing was sent" in result.output
    assert outbox_recipients(ready) == []


def test_the_scheduler_refuses_a_retracted_issue(project: Path, ready: Settings) -> None:
    retract_stored(project)
    decision = run_monthly(
        ready, db(ready), MONTH, now=FIRED + timedelta(minutes=1), fired_at=FIRED
    )
    assert decision.outcome is Outcome.WAITING
    assert "DOI error" in decision.reason and "retracted" in decision.reason
    assert outbox_recipients(ready) == []


def test_the_scheduler_finds_a_new_retraction_online_before_sending(
    project: Path, ready: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = StandIn(
        works={
            SUMMERS: work(
                SUMMERS,
                "A survey of psychological practitioner workplace wellbeing",
                [("Summers", "Emma M.")],
                "Clinical Psychology & Psychotherapy",
                2020,
                updated_by=[notice("retraction", RETRACTION_NOTICE, (2026, 11, 30), "publisher")],
            )
        },
        free={},
    )
    with stand_in(service):
        monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", service.url)
        monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", service.url)
        assert run(ready) is Outcome.WAITING
    stored = MetadataStore(project / "issues" / ".metadata").get(SUMMERS)
    assert stored is not None and stored.retractions  # the refreshed record was kept


def test_offline_the_scheduler_sends_on_the_stored_records_with_a_warning(
    project: Path, ready: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    store = MetadataStore(project / "issues" / ".metadata")
    for doi, stamp in ((SUMMERS, "2026-11-20T08:00:00Z"), (BRUGNERA, "2026-11-02T08:00:00Z")):
        path = store.path(doi)
        data = json.loads(path.read_text())
        data["fetched_at"] = stamp
        path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="newsletter.monthly"):
        assert run(ready) is Outcome.SENT
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "no network" in message
        and "the stored records were last checked 2026-11-02T08:00:00Z" in message
        and "sending on the stored records" in message
        for message in warnings
    ), warnings
    assert outbox_recipients(ready) == sorted(ACTIVE)
