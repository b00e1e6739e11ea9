"""Usage of the command line: the project found from a subfolder, months checked as months,
did-you-mean for mistyped commands, usage errors exit 2, and every help ending with examples."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from newsletter.cli import SETTINGS_FILE, SUMMARIES, main
from newsletter.cli.reference import commands
from newsletter.cli.types import MONTH
from newsletter.config import SETTINGS_FILE as CONFIG_SETTINGS_FILE
from tests.schedkit import edit_schedule


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _usage_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output, result.output


# --- the project, from any subfolder ----------------------------------------------------------


def test_a_command_run_in_a_subfolder_finds_the_project(
    project: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "issues" / "drafts").mkdir()
    monkeypatch.chdir(project / "issues" / "drafts")
    result = _run("check", "--offline", "2021-01")
    assert result.exit_code == 0, result.output
    assert "1 file checked: 0 errors" in result.output
    assert "schedule.yaml: not found" not in result.output


def test_a_path_is_still_read_from_the_working_folder(
    project: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "issues")
    result = _run("check", "--offline", "2021-01.md", "../issues/2020-12.md")
    assert result.exit_code == 0, result.output
    assert "2 files checked: 0 errors" in result.output


def test_a_real_process_in_the_issues_folder(project: Path, clean_env: None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "schedule", "--next", "1", "--after", "2021-01"],
        cwd=project / "issues",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "issues/2021-01.md" in done.stdout and "America/Toronto" in done.stdout


def test_project_option_and_environment_still_win(
    project: Path, tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    shutil.copytree(project, other)
    edit_schedule(other, timezone="Europe/Paris")
    monkeypatch.chdir(project / "issues")
    assert "(America/Toronto)" in _run("schedule", "--next", "1").output
    assert "(Europe/Paris)" in _run("--project", str(other), "schedule", "--next", "1").output
    monkeypatch.setenv("NEWSLETTER_PROJECT", str(other))
    assert "(Europe/Paris)" in _run("schedule", "--next", "1").output


def test_no_project_anywhere_up_is_one_line_exit_2(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = tmp_path / "a" / "b"
    nowhere.mkdir(parents=True)
    monkeypatch.chdir(nowhere)
    result = _run("check", "2021-01")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: schedule.yaml: not found in {nowhere} or any folder above it; run the command "
        "inside the newsletter's folder or pass --project DIR"
    )


def test_the_settings_file_name_is_configs() -> None:
    assert SETTINGS_FILE == CONFIG_SETTINGS_FILE


# --- mistyped commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sned",), "No such command 'sned'. Did you mean 'send'?"),
        (("chek", "2021-01"), "No such command 'chek'. Did you mean 'check'?"),
        (("subscribers", "ad", "a@b.org"), "No such command 'ad'. Did you mean 'add'?"),
        (("subscribers", "snyc"), "No such command 'snyc'. Did you mean 'sync'?"),
        (("doi", "refrsh"), "No such command 'refrsh'. Did you mean 'refresh'?"),
    ],
)
def test_a_mistyped_command_gets_a_suggestion(
    project: Path, clean_env: None, args: tuple[str, ...], message: str
) -> None:
    _usage_error(_run("--project", str(project), *args), message)


def test_a_command_like_nothing_gets_no_suggestion(project: Path, clean_env: None) -> None:
    result = _run("--project", str(project), "xyzzy")
    _usage_error(result, "No such command 'xyzzy'.")
    assert "Did you mean" not in result.output


# --- months ------------------------------------------------------------------------------------


@pytest.mark.parametrize("month", ["2021-13", "2021-2", "21-02", "2021-00"])
@pytest.mark.parametrize(
    "command",
    [
        ("check",),
        ("build",),
        ("preview",),
        ("send", "--dry-run"),
        ("report",),
        ("doi", "refresh"),
    ],
)
def test_a_month_that_is_no_month_is_a_usage_error(
    project: Path, clean_env: None, command: tuple[str, ...], month: str
) -> None:
    result = _run("--project", str(project), *command, month)
    _usage_error(result, f"'{month}' is not a month: use YYYY-MM, e.g. 2021-01")
    assert "does not exist" not in result.output


def test_check_2021_13_says_what_is_wrong(project: Path, clean_env: None) -> None:
    result = _run("--project", str(project), "check", "2021-13")
    _usage_error(
        result,
        "Invalid value for 'ISSUE...': '2021-13' is not a month: use YYYY-MM, e.g. 2021-01 "
        "(the month is 01 to 12)",
    )


def test_the_month_type_for_commands_that_take_only_a_month() -> None:
    @click.command()
    @click.argument("month", type=MONTH)
    def shows(month: str) -> None:
        click.echo(month)

    assert CliRunner().invoke(shows, ["2027-03"]).output == "2027-03\n"
    for wrong in ("2027-3", "issues/2027-03.md", "2027-13"):
        result = CliRunner().invoke(shows, [wrong])
        _usage_error(result, f"'{wrong}' is not a month: use YYYY-MM, e.g. 2021-01")
    assert "Usage: shows [OPTIONS] YYYY-MM" in CliRunner().invoke(shows, ["--help"]).output


@pytest.mark.parametrize("option", ["--after", "--fire-at"])
def test_schedule_times_refuse_a_month_that_is_no_month(
    project: Path, clean_env: None, option: str
) -> None:
    command = "schedule" if option == "--after" else "scheduler"
    result = _run("--project", str(project), command, option, "2027-13")
    _usage_error(result, "'2027-13' is not a month: use YYYY-MM")


def test_a_missing_issue_of_a_real_month_still_says_the_file_is_missing(
    project: Path, clean_env: None
) -> None:
    result = _run("--project", str(project), "check", "2031-02")
    assert result.exit_code == 2
    assert "no issue for 2031-02: " in result.output
    assert "issues/2031-02.md does not exist" in result.output


def test_a_file_named_like_a_month_is_still_a_file(
    project: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "issues")
    shutil.copy("2021-01.md", "2021-1")
    result = _run("check", "--offline", "2021-1")
    assert result.exit_code == 1, result.output  # read, and named wrongly: its own finding says so
    assert '2021-1:1: error: the file name "2021-1" is not a month' in result.output
    assert "use YYYY-MM" not in result.output


# --- other usage errors ------------------------------------------------------------------------


def test_test_to_with_no_email_address_is_a_usage_error(project: Path, clean_env: None) -> None:
    result = _run("--project", str(project), "send", "2021-01", "--test-to", "not-an-email")
    _usage_error(result, "Invalid value for '--test-to': 'not-an-email' is not a valid email")


def test_only_my_topics_without_topics_is_a_usage_error(project: Path, clean_env: None) -> None:
    result = _run("--project", str(project), "subscribers", "add", "a@b.org", "--only-my-topics")
    _usage_error(result, "--only-my-topics needs --topics")


# --- help ----------------------------------------------------------------------------------------


def _every_help() -> list[tuple[str, str]]:
    return [(name, ctx.command.get_help(ctx)) for name, ctx in commands()]


def _examples(command: click.Command) -> list[str]:
    """The example lines closing the command's help text (its docstring, or else its epilog)."""
    for text in (command.help or "", command.epilog or ""):
        _, marker, tail = inspect.cleandoc(text).rpartition("\b\nExamples:\n")
        if marker:
            return [line.strip() for line in tail.splitlines()]
    return []


def test_every_help_ends_with_two_or_three_real_examples() -> None:
    found = list(commands())
    assert len(found) >= 20
    for name, ctx in found:
        examples = _examples(ctx.command)
        assert 2 <= len(examples) <= 3, (name, examples)
        for line in examples:
            assert line.startswith("newsletter "), (name, line)
            path = name.split()[1:]
            if path:  # each example runs the command it documents
                words = [w for w in line.split()[1:] if not w.startswith(("--", "~"))]
                assert words[: len(path)] == path, (name, line)
        shown = ctx.command.get_help(ctx)
        assert "  Examples:\n" + "".join(f"    {line}\n" for line in examples) in shown, name


def test_every_example_parses(project: Path, clean_env: None) -> None:
    """Each example names options its command has (click checks them before --help answers)."""
    for name, ctx in commands():
        for line in _examples(ctx.command):
            words = [w.strip("'") for w in line.split()[1:]]
            words = words[: words.index(">")] if ">" in words else words
            result = CliRunner().invoke(main, [*words, "--help"], prog_name="newsletter")
            assert result.exit_code == 0, (name, line, result.output)
            assert f"Usage: {name}" in result.output, (name, line)


def test_the_subscribers_summary_mentions_sync(clean_env: None) -> None:
    assert "sync" in SUMMARIES["subscribers"]
    result = _run("subscribers", "--help")
    assert "sync with the transport's suppression lists" in " ".join(result.output.split())
