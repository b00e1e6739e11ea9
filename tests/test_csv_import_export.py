"""CSV import and export on a real SQLite file, including a messy file the project never saw."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest

from newsletter.errors import ImportFileError
from newsletter.models import SubscriberStatus
from newsletter.store.csv_io import Outcome, export_csv, import_csv
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore

REPO = Path(__file__).resolve().parent.parent

# BOM, CRLF, a header in odd case with an ignored column, names with commas, quotes, accents and
# a line break inside quotes (refused: a name is one line), duplicates differing only in case,
# invalid addresses, blank lines, and a person who unsubscribed before the import.
MESSY = (
    "\ufeff Name ,EMAIL,Organisation\r\n"
    "Ann Lee,Ann.Lee@Example.ORG,Clinic A\r\n"  # line 2
    '"Okafor, Bruno",bruno@example.org,\r\n'  # line 3
    '"Chloé ""Coco"" Gagné",chloe@example.org,"Hôpital, Québec"\r\n'  # line 4
    ",ANN.LEE@example.org,\r\n"  # line 5: duplicate of line 2 (case only)
    "No At,not-an-address,\r\n"  # line 6
    "\r\n"  # line 7: blank
    "Gone Person,gone@example.org,\r\n"  # line 8: unsubscribed earlier
    '"Dev\r\nRamanathan",dev@example.org,\r\n'  # lines 9-10: a line break inside quotes
    "Two Ats,a@@example.org,\r\n"  # line 11
    "  Eli Mwangi  ,  eli@EXAMPLE.org  ,\r\n"  # line 12: spaces around
    "Bruno O.,BRUNO@EXAMPLE.ORG,\r\n"  # line 13: duplicate of line 3
    ",,\r\n"  # line 14: nothing at all (skipped as blank)
    "Missing Email,,x\r\n"  # line 15
)


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    return SubscriberStore(open_database(f"sqlite:///{tmp_path / 'subscribers.db'}"))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def snapshot(store: SubscriberStore) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    return [(p.email, p.name, p.status.value, p.topics) for p in store.iter_all()]


def db_dump(store: SubscriberStore) -> list[str]:
    database = store.engine.url.database
    assert database is not None
    with sqlite3.connect(database) as conn:
        return list(conn.iterdump())


def test_a_messy_csv_imports_to_exactly_the_right_list(
    store: SubscriberStore, tmp_path: Path
) -> None:
    gone = store.add("gone@example.org", name="Gone Person")
    store.unsubscribe(gone.id, reason="clicked unsubscribe", source="web")
    path = write(tmp_path / "messy.csv", MESSY)

    report = import_csv(store, path, status=SubscriberStatus.ACTIVE)

    by_line = {row.line: (row.outcome, row.reason) for row in report.rows}
    assert by_line[2][0] is Outcome.ADDED
    assert by_line[5] == (Outcome.DUPLICATE, "duplicate of line 2")
    assert by_line[6][0] is Outcome.INVALID and "@-sign" in by_line[6][1]
    assert by_line[8] == (Outcome.SUPPRESSED, "unsubscribed")
    assert by_line[9] == (
        Outcome.INVALID,
        "name: contains a line break (carriage return), U+000D, at character 4; "
        "a name is one line of plain text",
    )
    assert by_line[11][0] is Outcome.INVALID
    assert by_line[13] == (Outcome.DUPLICATE, "duplicate of line 3")
    assert by_line[15][0] is Outcome.INVALID and "empty" in by_line[15][1]
    assert 7 not in by_line and 14 not in by_line
    assert report.counts == {
        Outcome.ADDED: 4,
        Outcome.UPDATED: 0,
        Outcome.DUPLICATE: 2,
        Outcome.INVALID: 4,
        Outcome.SUPPRESSED: 1,
    }
    assert snapshot(store) == [
        ("gone@example.org", "Gone Person", "unsubscribed", ()),
        ("Ann.Lee@example.org", "Ann Lee", "active", ()),
        ("bruno@example.org", "Okafor, Bruno", "active", ()),
        ("chloe@example.org", 'Chloé "Coco" Gagné', "active", ()),
        ("eli@example.org", "Eli Mwangi", "active", ()),
    ]
    events = store.events(store.get("bruno@example.org").id)  # type: ignore[union-attr]
    assert events[0].kind == "subscribed" and "messy.csv" in events[0].reason
    record = store.record("bruno@example.org")
    assert record is not None and (record.source, record.source_detail) == ("import", "messy.csv")


def test_importing_the_same_file_twice_changes_nothing(
    store: SubscriberStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "messy.csv", MESSY)
    import_csv(store, path, status=SubscriberStatus.ACTIVE)
    before = db_dump(store)
    again = import_csv(store, path, status=SubscriberStatus.ACTIVE)
    assert again.counts[Outcome.ADDED] == again.counts[Outcome.UPDATED] == 0
    assert not again.written
    assert db_dump(store) == before


def test_export_then_import_changes_nothing(store: SubscriberStore, tmp_path: Path) -> None:
    import_csv(store, write(tmp_path / "messy.csv", MESSY), status=SubscriberStatus.PENDING)
    bounced = store.add("=cmd|calc@example.org", name="+SUM(A1)")
    store.set_status(bounced.id, SubscriberStatus.BOUNCED, reason="550", source="webhook")
    store.update_preferences(
        store.get("eli@example.org").id,  # type: ignore[union-attr]
        name="Eli Mwangi",
        topics=["Attendance, Attrition, and Drop-Out", "Therapist Factors"],
    )
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as out:
        assert export_csv(store, out) == 6
    before = db_dump(store)
    report = import_csv(store, exported, status=SubscriberStatus.ACTIVE)
    assert report.counts[Outcome.ADDED] == report.counts[Outcome.UPDATED] == 0
    assert report.counts[Outcome.INVALID] == 0
    assert db_dump(store) == before

    rows = list(csv.DictReader(exported.open(encoding="utf-8", newline="")))
    assert list(rows[0]) == ["email", "name", "status", "topics", "topic_mode", "subscribed_at"]
    eli = next(row for row in rows if row["email"] == "eli@example.org")
    assert eli["topics"] == "Attendance, Attrition, and Drop-Out;Therapist Factors"
    assert eli["status"] == "pending" and eli["subscribed_at"].endswith("+00:00")
    bad = next(row for row in rows if row["status"] == "bounced")
    assert bad["email"] == "'=cmd|calc@example.org" and bad["name"] == "'+SUM(A1)"


def test_an_export_imported_into_a_fresh_database_is_the_same_list(
    store: SubscriberStore, tmp_path: Path
) -> None:
    import_csv(store, write(tmp_path / "messy.csv", MESSY), status=SubscriberStatus.ACTIVE)
    store.unsubscribe("bruno@example.org", reason="x", source="cli")
    chloe = store.get("chloe@example.org")
    assert chloe is not None
    store.update_preferences(chloe.id, name=chloe.name, topics=["Therapist Factors"])
    first = io.StringIO()
    export_csv(store, first)
    (tmp_path / "list.csv").write_text(first.getvalue(), encoding="utf-8")

    fresh = SubscriberStore(open_database(f"sqlite:///{tmp_path / 'fresh.db'}"))
    import_csv(fresh, tmp_path / "list.csv", status=SubscriberStatus.ACTIVE)
    assert snapshot(fresh) == snapshot(store)
    assert fresh.is_suppressed("bruno@example.org")  # an export never resubscribes anyone
    second = io.StringIO()
    export_csv(fresh, second)
    assert second.getvalue() == first.getvalue()


def test_dry_run_writes_nothing(store: SubscriberStore, tmp_path: Path) -> None:
    before = db_dump(store)
    report = import_csv(
        store, write(tmp_path / "messy.csv", MESSY), status=SubscriberStatus.ACTIVE, dry_run=True
    )
    assert report.counts[Outcome.ADDED] == 5 and report.dry_run and not report.written
    assert db_dump(store) == before


def test_strict_writes_nothing_when_a_row_is_invalid(
    store: SubscriberStore, tmp_path: Path
) -> None:
    report = import_csv(
        store, write(tmp_path / "messy.csv", MESSY), status=SubscriberStatus.ACTIVE, strict=True
    )
    assert report.counts[Outcome.INVALID] == 4 and not report.written
    assert snapshot(store) == []


def test_updated_means_a_new_name_for_someone_on_the_list(
    store: SubscriberStore, tmp_path: Path
) -> None:
    store.add("ann@example.org", name="Ann")
    store.add("bo@example.org", name="Bo")
    pending = store.add("cy@example.org", status=SubscriberStatus.PENDING)
    path = write(
        tmp_path / "names.csv",
        "email,name\nann@example.org,Ann Lee\nbo@example.org,\ncy@example.org,Cy\n",
    )
    report = import_csv(store, path, status=SubscriberStatus.ACTIVE)
    assert [row.outcome for row in report.rows] == [
        Outcome.UPDATED,
        Outcome.DUPLICATE,  # an empty name never erases the one on file
        Outcome.UPDATED,
    ]
    assert store.get("ann@example.org").name == "Ann Lee"  # type: ignore[union-attr]
    assert store.get("bo@example.org").name == "Bo"  # type: ignore[union-attr]
    # an import never confirms anyone: cy stays pending
    assert store.get_by_id(pending.id).status is SubscriberStatus.PENDING  # type: ignore[union-attr]


def test_pending_import_and_forgotten_people(store: SubscriberStore, tmp_path: Path) -> None:
    store.add("forgot@example.org", name="F")
    store.forget("forgot@example.org")
    path = write(tmp_path / "p.csv", "email\nFORGOT@example.org\nnew@example.org\n")
    report = import_csv(store, path, status=SubscriberStatus.PENDING)
    assert [row.outcome for row in report.rows] == [Outcome.SUPPRESSED, Outcome.ADDED]
    assert store.get("new@example.org").status is SubscriberStatus.PENDING  # type: ignore[union-attr]
    assert store.get("forgot@example.org") is None


def test_a_large_import_is_one_batch_and_complete(store: SubscriberStore, tmp_path: Path) -> None:
    lines = ["email,name"] + [f"user{n}@example.org,User {n}" for n in range(3000)]
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    seen: list[tuple[int, int]] = []
    report = import_csv(
        store, path, status=SubscriberStatus.ACTIVE, progress=lambda d, t: seen.append((d, t))
    )
    assert report.counts[Outcome.ADDED] == 3000 and store.count_active() == 3000
    assert seen[-1] == (3001, 3001)
    assert len(store.events(store.get("user2999@example.org").id)) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,mail\nAnn,ann@example.org\n", r"bad\.csv:1: no `email` column"),
        ("email;name\nann@example.org;Ann\n", r"bad\.csv:1: .*separate the columns with commas"),
        ("", r"bad\.csv:1: the file is empty"),
        ("email,Email\na@example.org,b@example.org\n", r"bad\.csv:1: the column 'email' appears"),
        ('email,name\na@example.org,"Ann\nb@example.org,Bo\n', r"bad\.csv:2: not valid CSV"),
    ],
)
def test_unusable_files_are_refused_naming_file_and_line(
    store: SubscriberStore, tmp_path: Path, content: str, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        import_csv(store, write(tmp_path / "bad.csv", content), status=SubscriberStatus.ACTIVE)
    assert snapshot(store) == []


def test_a_file_that_is_not_utf8_is_refused_with_its_line(
    store: SubscriberStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "latin1.csv", "email,name\na@example.org,Ann\nb@example.org,Zoë\n", "latin-1"
    )
    with pytest.raises(ImportFileError, match=r"latin1\.csv:3: not UTF-8"):
        import_csv(store, path, status=SubscriberStatus.ACTIVE)


def test_the_shipped_sample_imports_cleanly(store: SubscriberStore) -> None:
    report = import_csv(store, REPO / "subscribers" / "sample.csv", status=SubscriberStatus.ACTIVE)
    counts = report.counts
    assert counts[Outcome.INVALID] == 0 and 5 <= counts[Outcome.ADDED] <= 8
    names = [p.name or "" for p in store.iter_all()]
    assert any("," in name for name in names) and any(not name.isascii() for name in names)
    assert all(p.email.endswith("@example.org") for p in store.iter_all())


def test_topics_column_is_checked_against_known_topics(
    store: SubscriberStore, tmp_path: Path
) -> None:
    known = ("Therapist Factors", "Attendance, Attrition, and Drop-Out")
    path = write(
        tmp_path / "topics.csv",
        "email,topics\n"
        'a@example.org,"therapist factors;ATTENDANCE, ATTRITION, AND DROP-OUT"\n'
        "b@example.org,Astrology\n",
    )
    report = import_csv(store, path, status=SubscriberStatus.ACTIVE, known_topics=known)
    assert [row.outcome for row in report.rows] == [Outcome.ADDED, Outcome.INVALID]
    assert "unknown topic 'Astrology'" in report.rows[1].reason
    assert store.get("a@example.org").topics == (  # type: ignore[union-attr]
        "Therapist Factors",
        "Attendance, Attrition, and Drop-Out",
    )


def test_a_name_change_by_import_is_recorded_as_an_event(
    store: SubscriberStore, tmp_path: Path
) -> None:
    ann = store.add("ann@example.org", name="Ann")
    import_csv(store, write(tmp_path / "n.csv", "email,name\nann@example.org,Ann Lee\n"))
    last = store.events(ann.id)[-1]
    assert (last.kind, last.reason, last.source) == ("updated", "name changed by n.csv", "import")
    assert last.to_status is None
