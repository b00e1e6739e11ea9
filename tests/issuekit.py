"""Helpers for the issue-format tests: a valid issue whose lines the tests change by number."""

from __future__ import annotations

from pathlib import Path

from newsletter.issues import lint_issue, load_topics
from newsletter.models import Issue

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "issues"
TOPICS = load_topics(REPO / "issues" / "topics.yaml")
SICI = "10.1002/(SICI)1097-4679(199901)55:1<1::AID-JCLP1>3.0.CO;2-J"

# Line numbers matter: the tests below change or assert lines of this file by number.
GOOD = """\
---
subject: Therapist well-being
preheader: Two studies on how practitioners fare.
status: ready
---

This month, two studies.

## First article
Citation: Doe, J. (2020). A study. *Journal of Studies*.
DOI: 10.1002/cpp.2509
Topics: Therapist Factors; Attendance, Attrition, and Drop-Out

The summary paragraph.

### Practice Implications
What to do about it.
"""


def edit(text: str, changes: dict[int, str | None]) -> str:
    """``text`` with line N replaced (a string may hold several lines) or removed (None)."""
    lines = text.split("\n")
    for number in sorted(changes, reverse=True):
        replacement = changes[number]
        if replacement is None:
            del lines[number - 1]
        else:
            lines[number - 1 : number] = replacement.split("\n")
    return "\n".join(lines)


def write(tmp_path: Path, content: str | bytes, name: str = "2021-01.md") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def lint(
    tmp_path: Path, content: str | bytes, name: str = "2021-01.md"
) -> tuple[Issue | None, list[str]]:
    issue, findings = lint_issue(write(tmp_path, content, name), TOPICS, display_path="f.md")
    return issue, [str(finding) for finding in findings]


def only(findings: list[str]) -> str:
    assert len(findings) == 1, findings
    return findings[0]


def article_n(number: int, title: str | None = None) -> str:
    return (
        f"## {title or f'Article {number}'}\n"
        "Citation: Doe, J. (2020). A study.\n"
        f"DOI: 10.1000/{number}\n"
        "Topics: Training\n\n"
        "Summary.\n\n"
        "### Practice Implications\n"
        "Do it.\n"
    )
