"""Topics and the topic mode wherever a reader's record is touched: CLI, CSV, stats."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.models import TopicMode
from newsletter.store.csv_io import Outcome, export_csv, import_csv
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db


def cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), "subscribers", *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def test_add_with_topics_and_only_my_topics_then_show(project: Path, settings: Settings) -> None:
    added = ok(
        cli(
            project,
            "add",
            "ann@example.org",
            "--topics",
            "attachment;  Depression and Depressive Symptoms",
            "--only-my-topics",
        )
    )
    assert "topics: Attachment; Depression and Depressive Symptoms (only)" in added.output
    person = SubscriberStore(db(settings).engine).get("ann@example.org")
    assert person is not None and person.topic_mode is TopicMode.ONLY
    assert person.topics == ("Attachment", "Depression and Depressive Symptoms")
    shown = ok(cli(project, "show", "ann@example.org")).output
    assert "topics:     Attachment; Depression and Depressive Symptoms" in shown
    assert "reads:      only" in shown
    ok(cli(project, "add", "bo@example.org"))
    assert "reads:      every article" in ok(cli(project, "show", "bo@example.org")).output


def test_add_refuses_unknown_topics_with_a_suggestion(project: Path, clean_env: None) -> None:
    result = cli(project, "add", "ann@example.org", "--topics", "Attachmnt")
    assert result.exit_code == 2
    assert "--topics: unknown topic 'Attachmnt' (did you mean \"Attachment\"?)" in result.output
    refused = cli(project, "add", "bo@example.org", "--only-my-topics")
    assert refused.exit_code == 2 and "--only-my-topics needs --topics" in refused.output


def test_csv_topics_and_mode_round_trip_and_bad_rows_are_reported_per_line(
    settings: Settings, tmp_path: Path
) -> None:
    known = ("Attachment", "Depression and Depressive Symptoms", "Therapist Factors")
    store = SubscriberStore(db(settings).engine)
    source = tmp_path / "in.csv"
    source.write_text(
        "email,topics,topic_mode\n"
        "a@example.org,attachment;THERAPIST FACTORS,only\n"
        "b@example.org,,\n"
        "c@example.org,Depresion and Depressive Symptoms,all\n"
        "d@example.org,Attachment,sometimes\n"
        "e@example.org,Depression and Depressive Symptoms,ALL\n",
        encoding="utf-8",
    )
    report = import_csv(store, source, known_topics=known)
    outcomes = [(row.line, row.outcome) for row in report.rows]
    assert outcomes == [
        (2, Outcome.ADDED),
        (3, Outcome.ADDED),
        (4, Outcome.INVALID),
        (5, Outcome.INVALID),
        (6, Outcome.ADDED),
    ]
    assert 'did you mean "Depression and Depressive Symptoms"?' in report.rows[2].reason
    assert "topic_mode 'sometimes': expected all or only" in report.rows[3].reason
    a = store.get("a@example.org")
    assert a is not None and a.topics == ("Attachment", "Therapist Factors")
    assert a.topic_mode is TopicMode.ONLY

    exported = tmp_path / "out.csv"
    with exported.open("w", encoding="utf-8", newline="") as out:
        export_csv(store, out)
    rows = {r["email"]: r for r in csv.DictReader(exported.open(encoding="utf-8"))}
    assert rows["a@example.org"]["topics"] == "Attachment;Therapist Factors"
    assert rows["a@example.org"]["topic_mode"] == "only"
    assert rows["b@example.org"]["topic_mode"] == "all"

    other = SubscriberStore(open_database(f"sqlite:///{tmp_path / 'fresh.db'}"))
    import_csv(other, exported, known_topics=known)

    def shape(s: SubscriberStore) -> list[tuple[str, tuple[str, ...], TopicMode]]:
        return [(p.email, p.topics, p.topic_mode) for p in s.iter_all()]

    assert shape(other) == shape(store)


def test_stats_counts_followers_per_topic_and_only_readers(
    project: Path, settings: Settings
) -> None:
    ok(cli(project, "add", "a@example.org", "--topics", "Attachment", "--only-my-topics"))
    ok(cli(project, "add", "b@example.org", "--topics", "Attachment; Therapist Factors"))
    ok(cli(project, "add", "c@example.org"))
    ok(cli(project, "add", "d@example.org", "--topics", "Therapist Factors", "--status", "pending"))
    out = ok(cli(project, "stats")).output
    assert "active readers with topics: 2 of 3; reading only their topics: 1" in out
    assert "  Attachment         2\n  Therapist Factors  1\n" in out
