"""A YAML tag in an issue's front matter is a finding on its line, never ignored or a crash."""

from __future__ import annotations

import pytest

from tests.issuekit import GOOD, edit, lint, only


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        (2, "subject: !custom Therapist well-being", "f.md:2: error: the YAML tag !custom"),
        (4, "!custom status: ready", "f.md:4: error: the YAML tag !custom"),
        (3, "preheader: !!python/object:os.system x", "f.md:3: error: the YAML tag !!python/"),
    ],
)
def test_a_tag_is_one_finding_on_its_line(tmp_path, line, text, expected):
    issue, findings = lint(tmp_path, edit(GOOD, {line: text}))
    assert issue is None
    assert only([finding for finding in findings if ": error: " in finding]).startswith(expected)


def test_yaml_own_string_tag_is_fine(tmp_path):
    issue, findings = lint(tmp_path, edit(GOOD, {2: "subject: !!str Therapist well-being"}))
    assert issue is not None and issue.subject == "Therapist well-being"
    assert not [finding for finding in findings if ": error: " in finding]
