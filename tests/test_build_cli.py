"""``newsletter build`` and ``newsletter check`` through click, on a copy of the project."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main

BROKEN = """---
subject: A broken issue
preheader: Nothing in here should ever reach a reader's inbox at all.
---

## An article without a citation
DOI: 10.1000/x
Topics: Depresion

A summary.

### Practice Implications
Implications.
"""


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args], catch_exceptions=False)


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def built(project: Path, clean_env: None) -> Path:
    result = run(project, "build", "2021-01")
    assert result.exit_code == 0, result.output
    return project / "build" / "2021-01"


def test_build_writes_the_four_files_and_says_so(project: Path, clean_env: None) -> None:
    result = run(project, "build", "2021-01")
    assert result.exit_code == 0, result.output
    out = project / "build" / "2021-01"
    assert sorted(p.name for p in out.iterdir()) == [
        "email.eml",
        "email.html",
        "email.mjml",
        "email.txt",
    ]
    for name in ("email.eml", "email.html", "email.mjml", "email.txt"):
        assert re.search(rf"wrote .*2021-01/{name} \(\d+\.\d KB\)", result.output)
    assert re.search(r"built 2021-01 in \d+\.\d\d s", result.output)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_eml_is_multipart_alternative_text_first(built: Path) -> None:
    message = read_eml(built / "email.eml")
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    text, html = (part.get_content() for part in parts)
    assert text.replace("\r\n", "\n") == (built / "email.txt").read_text(encoding="utf-8")
    assert html.replace("\r\n", "\n") == (built / "email.html").read_text(encoding="utf-8")


def test_eml_headers_address_a_sample_reader(built: Path) -> None:
    message = read_eml(built / "email.eml")
    assert message["From"] == "PPRNet Monthly <newsletter@example.org>"
    assert message["To"] == "Sample Reader <reader@example.org>"
    assert message["Reply-To"] == "editor@example.org"
    assert (
        message["Subject"]
        == "Therapist well-being — burnout in the NHS and mentalizing as a buffer"
    )
    assert message["X-Newsletter-Issue"] == "2021-01"
    assert re.fullmatch(r"<[^@\s]+@example\.org>", message["Message-ID"])
    assert message["Date"]
    unsubscribe = "https://newsletter.example.org/unsubscribe/sample-token"
    assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_built_files_have_the_placeholders_filled(built: Path) -> None:
    for name in ("email.html", "email.txt"):
        body = (built / name).read_text(encoding="utf-8")
        assert "__NL_" not in body
        assert "https://newsletter.example.org/unsubscribe/sample-token" in body
        assert "https://newsletter.example.org/preferences/sample-token" in body
    assert "__NL_UNSUBSCRIBE_URL__" in (built / "email.mjml").read_text(encoding="utf-8")


def test_build_takes_a_path_and_out(project: Path, clean_env: None, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "out"
    result = run(project, "build", str(project / "issues" / "2020-11.md"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "November 2020" in (out / "email.html").read_text(encoding="utf-8")


def test_rebuild_replaces_the_folder_whole(built: Path, project: Path) -> None:
    (built / "stale.txt").write_text("from an older build")
    assert run(project, "build", "2021-01").exit_code == 0
    assert not (built / "stale.txt").exists()
    assert (built / "email.eml").exists()


def test_failed_build_leaves_the_previous_build_untouched(built: Path, project: Path) -> None:
    before = {p.name: p.read_bytes() for p in built.iterdir()}
    template = project / "templates" / "email" / "article.mjml.j2"
    template.write_text("{{ article.nope }}")
    result = run(project, "build", "2021-01")
    assert result.exit_code == 1
    assert "article.mjml.j2:1: template error" in result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in built.iterdir()} == before
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]


def test_build_of_a_broken_issue_fails_with_located_errors(project: Path, clean_env: None) -> None:
    (project / "issues" / "2031-02.md").write_text(BROKEN, encoding="utf-8")
    result = run(project, "build", "2031-02")
    assert result.exit_code == 1
    assert re.search(r"2031-02\.md:\d+: error: .*Citation", result.output)
    assert re.search(r'2031-02\.md:\d+: error: unknown topic "Depresion"', result.output)
    assert not (project / "build" / "2031-02").exists()


def test_build_of_a_missing_issue_is_a_usage_error(project: Path, clean_env: None) -> None:
    result = run(project, "build", "2030-07")
    assert result.exit_code == 2
    assert "no issue for 2030-07" in result.output
    result = run(project, "build", "nowhere/2030-07.md")
    assert result.exit_code == 2


def test_check_passes_the_sample_issues(project: Path, clean_env: None) -> None:
    result = run(project, "check", "2020-11", "2020-12", "2021-01")
    assert result.exit_code == 0, result.output
    assert "3 files checked: 0 errors, 0 warnings" in result.output


def test_check_reports_every_finding_and_exits_1(project: Path, clean_env: None) -> None:
    (project / "issues" / "2031-02.md").write_text(BROKEN, encoding="utf-8")
    result = run(project, "check", "2031-02")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(lines) >= 2
    assert all(re.match(r"\S*2031-02\.md:\d+: error: ", line) for line in lines)
    assert re.search(r"1 file checked: \d+ errors?, \d+ warnings?", result.output)


def test_check_reports_rendered_email_problems(project: Path, clean_env: None) -> None:
    base = project / "templates" / "email" / "base.mjml.j2"
    base.write_text(base.read_text().replace("{{ unsubscribe_url }}", "/unsubscribe"))
    result = run(project, "check", "2021-01")
    assert result.exit_code == 1
    assert "'/unsubscribe' is not an absolute" in result.output
    assert "has no unsubscribe url" in result.output


def test_check_warns_once_about_a_long_subject(project: Path, clean_env: None) -> None:
    path = project / "issues" / "2021-01.md"
    source = path.read_text(encoding="utf-8")
    path.write_text(
        re.sub(r"^subject: .*$", "subject: " + "Long " * 20, source, count=1, flags=re.M),
        encoding="utf-8",
    )
    result = run(project, "check", "2021-01")
    assert result.exit_code == 0, result.output
    assert result.output.count("the subject") == 1
    assert re.search(
        r"2021-01\.md:2: warning: the subject has \d+ characters.* \[subject-length\]$",
        result.output,
        re.M,
    )
    assert "0 errors, 1 warning" in result.output


def test_check_of_a_missing_file_is_a_usage_error(project: Path, clean_env: None) -> None:
    result = run(project, "check", "2030-07")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["build", "check", "preview"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "ISSUE" in result.output


def _warn_twice(project: Path) -> None:
    """issues/2021-01.md with no intro (empty-intro) and a topic named twice (duplicate-topic)."""
    path = project / "issues" / "2021-01.md"
    source = path.read_text(encoding="utf-8")
    front_end = source.index("\n---\n", 4) + 5
    body = source[source.index("\n## ", front_end) + 1 :]
    body = re.sub(r"^(Topics: )(.*)$", r"\1\2; \2", body, count=1, flags=re.M)
    path.write_text(source[:front_end] + "\n" + body, encoding="utf-8")


def test_check_shows_codes_and_ignores_warnings_by_code(project: Path, clean_env: None) -> None:
    _warn_twice(project)
    result = run(project, "check", "2021-01")
    assert result.exit_code == 0, result.output
    assert "[empty-intro]" in result.output and "[duplicate-topic]" in result.output
    assert "0 errors, 3 warnings" in result.output  # two topics named twice
    result = run(project, "check", "2021-01", "--ignore", "empty-intro")
    assert "[empty-intro]" not in result.output and "[duplicate-topic]" in result.output
    assert "0 errors, 2 warnings (1 ignored)" in result.output
    result = run(
        project, "check", "--ignore", "empty-intro", "--ignore", "duplicate-topic", "2021-01"
    )
    assert result.exit_code == 0
    assert "[" not in result.output
    assert "1 file checked: 0 errors, 0 warnings (3 ignored)" in result.output


def test_build_ignores_warnings_by_code(project: Path, clean_env: None) -> None:
    _warn_twice(project)
    result = run(project, "build", "2021-01", "--ignore", "duplicate-topic")
    assert result.exit_code == 0, result.output
    assert "[empty-intro]" in result.output and "[duplicate-topic]" not in result.output


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("subject-lenght", 'unknown code "subject-lenght" (did you mean "subject-length"?)'),
        ("nonsense", 'unknown code "nonsense"; the codes are listed in docs/issue-format.md'),
        ("unknown-topic", '"unknown-topic" is the code of an error: only warnings can be ignored'),
        ("missing-unsubscribe", "only warnings can be ignored"),
    ],
)
@pytest.mark.parametrize("command", ["check", "build"])
def test_ignore_refuses_unknown_and_error_codes(
    project: Path, clean_env: None, command: str, code: str, problem: str
) -> None:
    result = run(project, command, "2021-01", "--ignore", code)
    assert result.exit_code == 2
    assert problem in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (project / "build").exists()


def test_ignoring_a_warning_never_hides_an_error(project: Path, clean_env: None) -> None:
    (project / "issues" / "2031-02.md").write_text(BROKEN, encoding="utf-8")
    result = run(project, "check", "2031-02", "--ignore", "empty-intro")
    assert result.exit_code == 1
    assert "[unknown-topic]" in result.output and "[empty-intro]" not in result.output
