"""Time ``lint_issue``: the sample issues, then worst cases at the 256 KB size limit.

    .venv/bin/python bench/issues.py [-n N]

Prints the median time of N runs per file and how many findings each produced.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.issues import MAX_BYTES, lint_issue, load_topics

ROOT = Path(__file__).resolve().parent.parent
HEAD = "---\nsubject: s\npreheader: p\n---\nintro\n## T\n"


def worst_cases() -> dict[str, str]:
    """Files just under the size limit that make each stage of the reader work hardest."""
    room = MAX_BYTES - len(HEAD) - 100
    return {
        "many unknown fields": HEAD + "Foo: x\n" * (room // 7),
        "many unknown topics": HEAD + "Topics: " + ";".join(["Depresion"] * (room // 10)) + "\n",
        "many unsafe links": HEAD
        + "Citation: a\nDOI: 10.1/x\nTopics: Training\n\n"
        + "[a](javascript:x) " * (room // 18),
        "many articles": "---\nsubject: s\n---\n" + "## T\n" * (room // 5),
        "open brackets": HEAD + "[" * room,
        "emphasis runs": HEAD + "*a " * (room // 3),
        "misplaced fields": HEAD
        + "Citation: a\nDOI: 10.1/x\nTopics: Training\n\nS.\n"
        + "DOI: 10.1/x\n" * (room // 12),
        "fields under ##Title": HEAD + "##X\n" + "DOI: 10.1/x\n" * (room // 12),
        "placeholders": HEAD + "[TODO: x]\n" * (room // 10),
        "generic link texts": HEAD
        + "Citation: a\nDOI: 10.1/x\nTopics: Training\n\n"
        + "[here](https://example.org) " * (room // 28),
    }


def time_lint(path: Path, runs: int) -> tuple[float, int]:
    topics = load_topics(ROOT / "issues" / "topics.yaml")
    timings, findings = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        _, found = lint_issue(path, topics)
        timings.append(time.perf_counter() - started)
        findings = len(found)
    return statistics.median(timings), findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs per sample issue (default 20)")
    args = parser.parse_args()
    for path in sorted((ROOT / "issues").glob("20??-??.md")):
        median, findings = time_lint(path, args.n)
        print(f"{path.name:24} {median * 1000:8.2f} ms  {findings:4} findings")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "2021-01.md"
        for name, text in worst_cases().items():
            path.write_text(text, encoding="utf-8")
            median, findings = time_lint(path, 1)
            size = len(text.encode()) // 1024
            print(f"{name:24} {median * 1000:8.0f} ms  {findings:4} findings  ({size} KB)")


if __name__ == "__main__":
    main()
