"""Benchmark (not a test): ``newsletter schedule`` with many issue files written ahead.

    .venv/bin/python bench/schedule.py --ahead 24 --runs 7

Copies this repository's project to a temporary folder, writes ``--ahead`` issue files for the
months after ``--after`` (copies of issues/2021-01.md), and times the command in-process (click's
runner, so the interpreter's start-up is left out) with and without a database: the first run
loads the modules and is reported apart.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main

REPO = Path(__file__).resolve().parent.parent


def _project(folder: Path, ahead: int, first: tuple[int, int]) -> Path:
    root = folder / "project"
    root.mkdir()
    shutil.copy(REPO / "schedule.yaml", root)
    for name in ("issues", "templates"):
        shutil.copytree(REPO / name, root / name)
    year, month = first
    for _ in range(ahead):
        shutil.copy(REPO / "issues" / "2021-01.md", root / "issues" / f"{year:04d}-{month:02d}.md")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return root


def _times(root: Path, after: str, runs: int) -> list[float]:
    runner = CliRunner()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = runner.invoke(main, ["--project", str(root), "schedule", "--after", after])
        times.append(time.perf_counter() - started)
        assert result.exit_code == 0, result.output
    return times


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ahead", type=int, default=24, help="issue files to write ahead")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--after", default="2027-01-01")
    args = parser.parse_args()
    year, month = int(args.after[:4]), int(args.after[5:7])
    with tempfile.TemporaryDirectory() as folder:
        root = _project(Path(folder), args.ahead, (year, month))
        for label in ("no database", "with a database"):
            times = _times(root, args.after, args.runs)
            print(
                f"{label}: {args.ahead} issue files ahead: first run {times[0]:.2f} s, "
                f"then median {statistics.median(times[1:]) * 1000:.0f} ms"
            )
            if label == "no database":
                assert not (root / "subscribers" / "subscribers.db").exists()
                runner = CliRunner()
                runner.invoke(main, ["--project", str(root), "subscribers", "stats"])


if __name__ == "__main__":
    main_()
