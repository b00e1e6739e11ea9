"""Golden files: compare an output whole with its stored copy, or rewrite it (--update-golden)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
DIFF_LINES = 60  # enough to see what changed; the rest is counted
UPDATE_HINT = (
    "if the change is intended: pytest --update-golden, then review git diff tests/golden/"
)
rewritten: list[Path] = []  # listed at the end of the run by conftest.pytest_terminal_summary


def normalise(text: str) -> str:
    """One spelling of an output: "\\n" line ends, no trailing spaces, no runs of blank lines.

    The rendered email holds nothing volatile today (no dates, ids or versions); one that
    appears belongs here, replaced by a fixed marker, so the golden files stay stable.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def assert_golden(path: Path, actual: str, *, update: bool) -> None:
    """``actual`` (normalised) equals the file at ``path``; with ``update``, rewrite it instead."""
    actual = normalise(actual)
    if update:
        if not path.is_file() or path.read_text(encoding="utf-8") != actual:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            if GOLDEN in path.parents:  # not the helper's own tests in tmp_path
                rewritten.append(path)
        return
    if not path.is_file():
        pytest.fail(f"{shown(path)} does not exist; create it with pytest --update-golden", False)
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        pytest.fail(_difference(path, expected, actual), pytrace=False)


def _difference(path: Path, expected: str, actual: str) -> str:
    """The first lines of a unified diff from the golden file to the output, and what to do."""
    diff = list(
        difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            fromfile=f"{shown(path)} (golden)",
            tofile="output now",
            lineterm="",
        )
    )
    head = diff[:DIFF_LINES]
    if len(diff) > DIFF_LINES:
        head.append(f"… {len(diff) - DIFF_LINES} more diff lines")
    return "\n".join([f"{shown(path)} differs from the output:", *head, UPDATE_HINT])


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.relative_to(GOLDEN.parent.parent))
    except ValueError:
        return str(path)
