"""The generated tables of ``docs/issue-format.md``: finding codes, front matter keys, fields.

Each table sits between two markers, ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``, and
is rewritten from the registries (``newsletter.codes``, ``newsletter.issues.fields``) by
``python -m newsletter.docgen`` (``--check`` only compares). tests/test_issue_format_docs.py
fails when the file and the code disagree, so the docs cannot drift.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from newsletter.codes import CODES
from newsletter.issues.fields import ARTICLE_FIELDS, FRONT_MATTER, Field

DOC = Path("docs") / "issue-format.md"
REGENERATE = "run python -m newsletter.docgen in the repository"
_BLOCK_RE = re.compile(
    r"^(?P<indent>[ \t]*)<!-- generated: (?P<name>[\w-]+) -->\n.*?^[ \t]*<!-- end: (?P=name) -->",
    re.MULTILINE | re.DOTALL,
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; "|" in a cell is escaped so it cannot split the cell."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def codes_table() -> list[str]:
    """Every finding code: its level, the check reporting it, and what it means."""
    rows = [
        (f"`{code.name}`", str(code.severity), " and ".join(code.where), code.meaning)
        for code in CODES.values()
    ]
    return _table(("code", "level", "reported by", "meaning"), rows)


def front_matter_table() -> list[str]:
    """The front matter keys, from ``FRONT_MATTER``."""
    return _fields_table(("key", "required", "meaning"), FRONT_MATTER, "`{}`")


def article_fields_table() -> list[str]:
    """The article field lines, from ``ARTICLE_FIELDS``."""
    return _fields_table(("field", "required", "value"), ARTICLE_FIELDS, "`{}:`")


def _fields_table(header: Sequence[str], table: Sequence[Field], shape: str) -> list[str]:
    rows = [(shape.format(field.name), field.requirement, field.help) for field in table]
    return _table(header, rows)


TABLES: dict[str, Callable[[], list[str]]] = {
    "codes": codes_table,
    "front-matter": front_matter_table,
    "article-fields": article_fields_table,
}


def update(text: str) -> str:
    """``text`` with every generated block rewritten from the registries."""

    def replace(match: re.Match[str]) -> str:
        indent, name = match.group("indent"), match.group("name")
        if name not in TABLES:
            raise ValueError(f"unknown generated table {name!r}; known: {', '.join(TABLES)}")
        lines = [f"<!-- generated: {name} -->", *TABLES[name](), f"<!-- end: {name} -->"]
        return "\n".join(indent + line for line in lines)

    return _BLOCK_RE.sub(replace, text)


def main(argv: Sequence[str] = ()) -> int:
    """Rewrite docs/issue-format.md (run from the repository); ``--check``: exit 1 if stale."""
    text = DOC.read_text(encoding="utf-8")
    fresh = update(text)
    if "--check" in argv:
        print(f"{DOC}: up to date" if fresh == text else f"{DOC}: stale; {REGENERATE}")
        return 0 if fresh == text else 1
    if fresh != text:
        DOC.write_text(fresh, encoding="utf-8")
    print(f"{DOC}: {'rewritten' if fresh != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
