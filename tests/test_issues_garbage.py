"""No input, however broken, makes the issue reader raise: garbage and fuzzed files give findings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from newsletter.issues import lint_issue
from newsletter.models import Finding
from tests.issuekit import GOOD, TOPICS, edit, lint

# --- garbage in, findings out --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"",
            "f.md:1: error: the file is empty: it needs front matter and at least one article [empty-file]",
        ),
        (
            b"  \n\n\t\n",
            "f.md:1: error: the file is empty: it needs front matter and at least one article [empty-file]",
        ),
        (
            b"\xef\xbb\xbf",
            "f.md:1: error: the file is empty: it needs front matter and at least one article [empty-file]",
        ),
        (
            b"---",
            "f.md:1: error: the front matter opened here is never closed: add a '---' line [unclosed-front-matter]",
        ),
        (
            b"ok\nok\n\xff\xfe",
            "f.md:3: error: the file is not UTF-8 text (byte 0xff); save it as UTF-8 [not-utf8]",
        ),
        (
            b"\xff\xfe-\x00-\x00",
            "f.md:1: error: the file is not UTF-8 text (byte 0xff); save it as UTF-8 [not-utf8]",
        ),
        (
            b"---\nsubject: a\x00b\n---\n",
            "f.md:2: error: the file holds a control character (U+0000): is it a text file? [control-character]",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "f.md:1: error: the file is not UTF-8 text (byte 0x89); save it as UTF-8 [not-utf8]",
        ),
    ],
)
def test_garbage_gives_one_finding(tmp_path: Path, content: bytes, expected: str) -> None:
    issue, findings = lint(tmp_path, content)
    assert issue is None
    assert findings == [expected]


def test_front_matter_only_dashes(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, "---\n---\n")
    assert findings == [
        "f.md:1: error: the front matter is empty: it needs at least 'subject: …' [empty-front-matter]",
        "f.md:2: warning: the intro is empty: a line or two before the first article [empty-intro]",
        "f.md:2: error: the issue has no articles: each starts with a line '## Title' [no-articles]",
    ]


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, edit(GOOD, {3: "preheader: " + "[" * 5000}))
    # PyYAML gives no position when it runs out of stack: the front matter's first line is named
    assert (
        findings[0]
        == "f.md:2: error: the front matter is not valid YAML: nested too deeply [yaml-syntax]"
    )


def test_huge_file(tmp_path: Path) -> None:
    _, findings = lint(tmp_path, GOOD + "x" * 256 * 1024)
    assert findings == [
        "f.md:1: error: the file is larger than 256 KB; an issue is a few KB of Markdown [file-too-large]"
    ]
    issue, _ = lint(tmp_path, GOOD + "x" * (256 * 1024 - len(GOOD) - 1))
    assert issue is not None  # just under the limit


def test_unreadable_paths(tmp_path: Path) -> None:
    issue, findings = lint_issue(tmp_path / "2021-01.md", TOPICS, display_path="f.md")
    assert issue is None
    assert [str(f) for f in findings] == [
        "f.md:1: error: cannot read the file: No such file or directory [unreadable]"
    ]
    (tmp_path / "2021-02.md").mkdir()
    _, findings = lint_issue(tmp_path / "2021-02.md", TOPICS, display_path="f.md")
    assert str(findings[0]) == "f.md:1: error: cannot read the file: Is a directory [unreadable]"


def test_random_bytes_never_raise(tmp_path: Path) -> None:
    rng = random.Random(20210101)
    pieces = [
        b"---\n",
        b"## ",
        b"### Practice Implications\n",
        b"Topics: ",
        b"DOI: 10.",
        b"\n",
        b"\r\n",
        b"[x](",
        b"javascript:",
        b")",
        b"\xff",
        b"\x00",
        b"\t",
        b":",
        b"[",
        b"{",
        b"subject: ",
        b"`",
        b"```\n",
        b"\xe2\x80\xa8",
        b"&",
        b"<",
        b"#",
        b"-",
        b"*",
        b">",
    ]
    path = tmp_path / "2021-01.md"
    for case in range(300):
        if case % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(60)))
        path.write_bytes(data)
        issue, findings = lint_issue(path, TOPICS)
        assert all(isinstance(finding, Finding) for finding in findings)
        assert (issue is None) == any(finding.is_error for finding in findings)


def test_mutated_good_files_never_raise(tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = GOOD.split("\n")
    path = tmp_path / "2021-01.md"
    for _ in range(300):
        mutated = list(lines)
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(mutated))
            action = rng.randrange(3)
            if action == 0:
                del mutated[position]
            elif action == 1:
                mutated.insert(position, rng.choice(lines))
            else:
                line = mutated[position]
                cut = rng.randrange(len(line) + 1)
                mutated[position] = line[:cut] + rng.choice(":#[]-;`>\t\"'") + line[cut:]
        path.write_text("\n".join(mutated), encoding="utf-8")
        issue, findings = lint_issue(path, TOPICS)
        assert (issue is None) == any(finding.is_error for finding in findings)
        assert all(finding.line >= 1 for finding in findings)
