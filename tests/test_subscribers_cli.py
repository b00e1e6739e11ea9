"""``newsletter subscribers …`` through click's runner, on the project fixture's real SQLite file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main

MESSY = (
    "\ufeffemail,name\r\n"
    "ann@example.org,Ann Lee\r\n"
    "not-an-address,Nobody\r\n"
    '"ANN@example.org","Lee, Ann"\r\n'
    '"bo@example.org","Bo ""B"" Ødegård"\r\n'
    "x@@example.org,\r\n"
)


@pytest.fixture
def run(project: Path, clean_env: None) -> object:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--project", str(project), "subscribers", *args])

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def test_help_of_every_command(run) -> None:  # type: ignore[no-untyped-def]
    for command in ("add", "remove", "import", "export", "list", "show", "stats"):
        assert "Usage:" in ok(run(command, "--help")).output


def test_add_list_show_remove(run, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert (
        "added Ann@example.org (active)"
        in ok(run("add", "Ann@Example.ORG", "--name", "Ann")).output
    )
    ok(run("add", "bo@example.org", "--status", "pending"))
    assert (project / "subscribers" / "subscribers.db").exists()
    listing = ok(run("list")).output.splitlines()
    assert listing == ["Ann@example.org\tactive\tAnn", "bo@example.org\tpending\t"]
    assert ok(run("list", "--status", "pending")).output == "bo@example.org\tpending\t\n"
    assert "unsubscribed ann@example.org" in ok(run("remove", "ann@example.org")).output
    shown = ok(run("show", "ANN@example.org")).output
    assert "status:     unsubscribed" in shown
    assert "subscribed" in shown and "active → unsubscribed" in shown
    assert "removed on the command line [cli]" in shown
    stats = ok(run("stats")).output
    assert "unsubscribed  1" in stats and "pending       1" in stats and "total         2" in stats


def test_user_mistakes_exit_1_or_2_without_traceback(run) -> None:  # type: ignore[no-untyped-def]
    ok(run("add", "ann@example.org"))
    for args, code, message in (
        (("add", "ANN@example.org"), 1, "already"),
        (("add", "not an address"), 2, "not a valid email address"),
        (("add", "x@example.org", "--status", "bounced"), 2, "Invalid value"),
        (("show", "nobody@example.org"), 1, "not on the list"),
        (("remove", "nobody@example.org"), 1, "not on the list"),
        (("import", "missing.csv"), 2, "does not exist"),
    ):
        result = run(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_import_reports_lines_and_counts(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "people.csv"
    path.write_bytes(MESSY.encode("utf-8"))
    result = ok(run("import", str(path)))
    assert f"{path}:3: 'not-an-address' is not a valid email address" in result.stderr
    assert f"{path}:6: " in result.stderr
    assert "2 added, 0 updated, 1 duplicate, 2 invalid, 0 suppressed" in result.stdout
    again = ok(run("import", str(path)))
    assert "0 added, 0 updated, 3 duplicate, 2 invalid, 0 suppressed" in again.stdout


def test_a_name_with_a_control_character_is_refused_where_it_was_given(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("add", "ann@example.org", "--name", "Ann\nBcc: all@example.org")
    assert result.exit_code == 2 and "Traceback" not in result.output  # a usage mistake
    assert result.stderr.strip() == (
        "error: --name: contains a line break (line feed), U+000A, at character 4; "
        "a name is one line of plain text"
    )
    too_long = run("add", "ann@example.org", "--name", "x" * 201)
    assert too_long.exit_code == 2
    assert "error: --name: is 201 characters long; at most 200 are allowed" in too_long.stderr
    assert ok(run("list")).output == ""
    path = tmp_path / "people.csv"
    path.write_text("email,name\nann@example.org,Ann\x00Lee\nbo@example.org,Bo\n", encoding="utf-8")
    result = ok(run("import", str(path)))
    assert result.stderr.splitlines()[1:] == [
        f"{path}:2: name: contains a NUL character, U+0000, at character 4; "
        "a name is one line of plain text"
    ]
    assert "1 added, 0 updated, 0 duplicate, 1 invalid" in result.stdout
    assert ok(run("list")).output == "bo@example.org\tactive\tBo\n"


def test_import_dry_run_and_pending(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "people.csv"
    path.write_text("email\nann@example.org\n", encoding="utf-8")
    dry = ok(run("import", str(path), "--dry-run"))
    assert "dry run, nothing written: 1 added" in dry.stdout
    assert ok(run("list")).output == ""
    ok(run("import", str(path), "--status", "pending"))
    assert ok(run("list")).output == "ann@example.org\tpending\t\n"


def test_import_strict_refuses_a_file_with_invalid_rows(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "people.csv"
    path.write_bytes(MESSY.encode("utf-8"))
    result = run("import", str(path), "--strict")
    assert result.exit_code == 1 and "nothing was imported (--strict)" in result.output
    assert ok(run("list")).output == ""


def test_an_unreadable_file_is_one_line_exit_1(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "latin.csv"
    path.write_bytes("email,name\nb@example.org,Zoë\n".encode("latin-1"))
    result = run("import", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {path}:2: not UTF-8")
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("mail,name\n", encoding="utf-8")
    result = run("import", str(nohead))
    assert result.exit_code == 1 and f"{nohead}:1: no `email` column" in result.stderr


def test_export_to_stdout_and_to_a_file(run, tmp_path: Path, project: Path) -> None:  # type: ignore[no-untyped-def]
    ok(run("import", str(project / "subscribers" / "sample.csv")))
    ok(run("remove", "eli.mwangi@example.org"))
    stdout = ok(run("export")).stdout
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 6 and {"email", "name", "status", "topics", "subscribed_at"} <= set(rows[0])
    out = tmp_path / "list.csv"
    out.write_text("old content\n", encoding="utf-8")
    result = ok(run("export", str(out)))
    assert "exported 6 subscriber(s)" in result.stderr
    assert out.read_text(encoding="utf-8") == stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv", "project"]
    again = ok(run("import", str(out)))
    assert "0 added, 0 updated, 5 duplicate, 0 invalid, 1 suppressed" in again.stdout


def test_export_into_a_missing_folder_fails_cleanly(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("export", str(tmp_path / "nowhere" / "list.csv"))
    assert result.exit_code == 1 and "does not exist" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_export_into_a_folder_that_refuses_files_fails_cleanly(run) -> None:  # type: ignore[no-untyped-def]
    # /proc exists but no file can be created in it, not even by root
    result = run("export", "--excel", "/proc/list.csv")
    assert result.exit_code == 1
    assert "error: /proc/list.csv: cannot write in /proc" in result.output
    assert "Traceback" not in result.output


def test_remove_forget_erases_and_keeps_suppressed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok(run("add", "ann@example.org", "--name", "Ann"))
    assert "stays suppressed" in ok(run("remove", "ann@example.org", "--forget")).output
    assert "forgotten already" in ok(run("remove", "ann@example.org", "--forget")).output
    assert "forgotten on" in ok(run("show", "ann@example.org")).output
    path = tmp_path / "back.csv"
    path.write_text("email,name\nAnn@example.org,Ann\n", encoding="utf-8")
    assert "1 suppressed" in ok(run("import", str(path))).stdout
    assert ok(run("list")).output == ""
    result = run("add", "ann@example.org")
    assert result.exit_code == 1 and "stays suppressed" in result.output
    assert "(of which 1 forgotten" in ok(run("stats")).output


def test_a_bad_database_url_is_a_config_error(
    project: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "nosuchdb://x")
    result = CliRunner().invoke(main, ["--project", str(project), "subscribers", "stats"])
    assert result.exit_code == 2 and "database" in result.output
    assert "Traceback" not in result.output


def test_import_checks_topics_against_issues_topics_yaml(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.csv"
    path.write_text(
        "email,topics\na@example.org,therapist factors\nb@example.org,Astrology\n", "utf-8"
    )
    result = ok(run("import", str(path)))
    assert f"{path}:3: unknown topic 'Astrology'" in result.stderr
    assert "1 added" in result.stdout
    assert "topics:     Therapist Factors" in ok(run("show", "a@example.org")).output


def test_import_names_each_duplicate_row_with_its_line(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    others = [f"p{n}@example.org" for n in range(1, 11)]  # lines 4-13
    text = "email\np0@example.org\na@b.org\n" + "\n".join(others) + "\na@b.org\nA@B.ORG\n"
    Path("subscribers.csv").write_text(text, encoding="utf-8")
    result = ok(run("import", "subscribers.csv"))
    assert result.stderr.splitlines()[-2:] == [
        "subscribers.csv:14: duplicate of line 3: a@b.org",
        "subscribers.csv:15: duplicate of line 3: A@b.org",
    ]
    assert "12 added, 0 updated, 2 duplicate, 0 invalid, 0 suppressed" in result.stdout
    # again: the rows already on the list are counted, not listed; the repeats still are
    again = ok(run("import", "subscribers.csv"))
    listed = [line for line in again.stderr.splitlines() if line.startswith("subscribers.csv:")]
    assert listed == [
        "subscribers.csv:14: duplicate of line 3: a@b.org",
        "subscribers.csv:15: duplicate of line 3: A@b.org",
    ]
    assert "0 added, 0 updated, 14 duplicate" in again.stdout


ACCENTED = (
    "email,name\n"
    "zoe@example.org,Zoë Ñúñez-Çelik\n"
    "jose@example.org,José Ødegård\n"
    'evil@example.org,"=HYPERLINK(""http://x.example"",""clic"")"\n'
    "plus@example.org,+1 Müller\n"
)


def test_export_excel_has_the_bom_keeps_accents_and_guards_formulas(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, project: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text(ACCENTED, encoding="utf-8")
    ok(run("import", str(source)))
    out = tmp_path / "for-excel.csv"
    result = ok(run("export", "--excel", str(out)))
    assert "exported 4 subscriber(s)" in result.stderr
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfemail,name,status,")
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    text = data.decode("utf-8-sig")
    assert "Zoë Ñúñez-Çelik" in text and "José Ødegård" in text
    names = {row["email"]: row["name"] for row in csv.DictReader(io.StringIO(text))}
    assert names["evil@example.org"] == '\'=HYPERLINK("http://x.example","clic")'
    assert names["plus@example.org"] == "'+1 Müller"
    # to standard output too: the same bytes
    assert ok(run("export", "--excel")).stdout_bytes == data
    # it imports back into an empty list with every name as it was
    (project / "subscribers" / "subscribers.db").unlink()
    ok(run("import", str(out)))
    listing = ok(run("list")).stdout
    assert "Zoë Ñúñez-Çelik" in listing and "José Ødegård" in listing
    assert '=HYPERLINK("http://x.example","clic")' in listing
    assert "\t'" not in listing


def test_adding_a_malformed_address_is_a_usage_mistake(run) -> None:  # type: ignore[no-untyped-def]
    result = run("add", "not-an-email")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith("error: 'not-an-email' is not a valid email address")
    assert ok(run("list")).output == ""
