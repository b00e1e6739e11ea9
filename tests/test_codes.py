"""Finding codes and field tables: the registries, their use in the code, and the docs in step."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from newsletter import docgen
from newsletter.codes import _TABLE, CODES, code_for
from newsletter.issues.common import Report
from newsletter.issues.fields import ARTICLE_FIELDS, FRONT_MATTER
from newsletter.models import Article, Issue, Severity

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "issue-format.md"
SOURCE = "\n".join(
    path.read_text(encoding="utf-8")
    for path in (REPO / "newsletter").rglob("*.py")
    if path.name not in ("codes.py", "docgen.py")
)


def test_codes_are_unique_kebab_case_and_explained() -> None:
    assert len(CODES) == len(_TABLE), "a code is registered twice"
    for code in CODES.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code.name), code.name
        assert code.meaning and code.where


def _generated_codes() -> set[str]:
    """Codes made from the field table: missing-citation, missing-topics, missing-doi (group)."""
    names = {f"missing-{field.name.lower()}" for field in ARTICLE_FIELDS if field.required}
    groups = {field.group for field in ARTICLE_FIELDS if field.group}
    for group in groups:
        first = next(field for field in ARTICLE_FIELDS if field.group == group)
        names.add(f"missing-{first.name.lower()}")
    return names | {code for field in FRONT_MATTER if field.missing for code in [field.missing[0]]}


def test_every_registered_code_is_reported_somewhere() -> None:
    """No stale rows: each code is written in the source or made from the field table."""
    generated = _generated_codes()
    unused = [name for name in CODES if f'"{name}"' not in SOURCE and name not in generated]
    assert unused == []
    assert generated <= set(CODES)


def test_every_code_written_in_the_source_is_registered() -> None:
    """A finding code literal (first argument of report.error/warning, _finding) is in CODES."""
    checkers = [
        *(REPO / "newsletter" / "issues").glob("*.py"),
        *(REPO / "newsletter" / "checks").glob("*.py"),
    ]
    source = "\n".join(path.read_text(encoding="utf-8") for path in checkers)
    calls = re.findall(r'(?:\.error|\.warning|_finding)\(\s*(?:path,\s*)?"([a-z0-9-]+)"', source)
    assert calls, "the pattern finds the calls"
    assert sorted(set(calls) - set(CODES)) == []


def test_an_unregistered_or_mislevelled_code_fails_loudly() -> None:
    report = Report("f.md")
    with pytest.raises(ValueError, match="not registered"):
        report.error("no-such-code", 1, "x")
    with pytest.raises(ValueError, match="not registered as a error"):
        report.error("subject-length", 1, "a warning's code on an error")
    assert code_for("unknown-topic", Severity.ERROR).name == "unknown-topic"
    assert not CODES["unknown-topic"].ignorable and CODES["subject-length"].ignorable


def test_the_docs_tables_are_generated_from_the_registries() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert docgen.update(text) == text, "docs/issue-format.md is stale: python -m newsletter.docgen"
    for name in CODES:
        assert f"| `{name}` |" in text
    for field in ARTICLE_FIELDS:
        assert f"   | `{field.name}:` | {field.requirement} |" in text


def test_a_stale_docs_table_is_rewritten() -> None:
    stale = "x\n  <!-- generated: front-matter -->\n  | old |\n  <!-- end: front-matter -->\ny"
    fresh = docgen.update(stale)
    assert "| old |" not in fresh
    assert "  | `subject` | yes | the email's subject" in fresh
    assert fresh.startswith("x\n") and fresh.endswith("\ny")
    with pytest.raises(ValueError, match="unknown generated table"):
        docgen.update("<!-- generated: nope -->\n<!-- end: nope -->")


def test_field_tables_and_models_are_in_step() -> None:
    """Every row fills a model attribute, and every parsed attribute of the models has a row."""
    issue_fields = {field.name for field in dataclasses.fields(Issue)}
    article_fields = {field.name for field in dataclasses.fields(Article)}
    own_issue = {"month", "path", "intro", "articles", "findings", "source"}
    own_article = {"title", "summary", "implications", "line", "citation_line"}
    assert {field.attr for field in FRONT_MATTER} == issue_fields - own_issue
    assert {field.attr for field in ARTICLE_FIELDS} == article_fields - own_article
