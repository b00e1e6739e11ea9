"""The emails of the sample issues, HTML and text, compared whole with tests/golden/.

After an intended change to the templates or the renderer: ``pytest tests/test_golden.py
--update-golden`` rewrites the files; review ``git diff tests/golden/`` and commit them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.issues import load_topics, read_issue
from newsletter.models import RenderedIssue
from newsletter.render import render_issue
from tests.goldenkit import GOLDEN, assert_golden, normalise

SAMPLES = ("2020-11", "2020-12", "2021-01")
PARTS = {"html": "email.html", "text": "email.txt"}


def _render(settings: Settings, month: str) -> RenderedIssue:
    issue = read_issue(settings.issues_dir / f"{month}.md", load_topics(settings.topics_file))
    return render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )


@pytest.mark.parametrize("part", sorted(PARTS))
@pytest.mark.parametrize("month", SAMPLES)
def test_sample_email_matches_its_golden_file(
    settings: Settings, update_golden: bool, month: str, part: str
) -> None:
    rendered = _render(settings, month)
    assert_golden(GOLDEN / month / PARTS[part], getattr(rendered, part), update=update_golden)


def test_a_difference_fails_with_a_readable_diff(tmp_path: Path) -> None:
    path = tmp_path / "email.txt"
    lines = [f"line {number}" for number in range(200)]
    assert_golden(path, "\n".join(lines), update=True)
    assert_golden(path, "\n".join(lines) + "\n\n\n", update=False)  # normalised alike
    changed = [*lines[:50], "line 50 changed", *lines[51:]]
    with pytest.raises(pytest.fail.Exception) as caught:
        assert_golden(path, "\n".join(changed), update=False)
    message = str(caught.value)
    assert "-line 50\n+line 50 changed" in message
    assert "line 47" in message and "line 10\n" not in message  # three lines of context
    assert "pytest --update-golden" in message


def test_a_long_difference_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "email.html"
    assert_golden(path, "\n".join(f"a{number}" for number in range(300)), update=True)
    with pytest.raises(pytest.fail.Exception, match=r"… \d+ more diff lines"):
        assert_golden(path, "\n".join(f"b{number}" for number in range(300)), update=False)


def test_a_missing_golden_file_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="does not exist"):
        assert_golden(tmp_path / "none.txt", "x", update=False)


def test_normalise_is_stable() -> None:
    assert normalise("a  \r\n\n\n\nb\n\n") == "a\n\nb\n"
    assert normalise(normalise("a\n\n\nb")) == normalise("a\n\n\nb")
