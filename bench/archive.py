"""Measure the archive site with many issues: issue page, server-side search, static export.

    .venv/bin/python bench/archive.py                 # 120 archived issues (10 years)
    .venv/bin/python bench/archive.py --issues 240 --queries 50

Requests go in-process (Starlette's TestClient: the app's own time, no socket). Prints the first
(cold: every issue parsed) and later (cached) timings, the search index's size and the export's
time. Files go to bench/out/archive/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "archive"
sys.path.insert(0, str(REPO))

from starlette.testclient import TestClient  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.web.app import create_app  # noqa: E402
from newsletter.web.archive import export_static  # noqa: E402

QUERIES = ("alliance", "videoconferenced", "burnout nhs", "meta-analysis", "zzzz", "therapist")


def project(issues: int) -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", OUT / "schedule.yaml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, OUT / folder)
    samples = sorted((OUT / "issues").glob("20*.md"))
    for number in range(issues):
        month = f"{2000 + number // 12}-{number % 12 + 1:02d}"
        folder = OUT / "archive" / month
        folder.mkdir(parents=True)
        (folder / "issue.md").write_text(samples[number % len(samples)].read_text())
        (folder / "index.html").write_text("<!doctype html><title>sent</title>")
        (folder / "email.txt").write_text("sent\n")
        when = f"{month}-05T14:00:00+00:00"
        record = {"issue": month, "subject": "s", "started_at": when, "finished_at": when}
        (folder / "send.json").write_text(json.dumps({**record, "transport": "outbox"}))
    return OUT


def timed(http: TestClient, path: str, **params: str) -> float:
    start = time.perf_counter()
    answer = http.get(path, params=params)
    elapsed = time.perf_counter() - start
    assert answer.status_code == 200, (path, answer.status_code)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=120, help="archived issues")
    parser.add_argument("--queries", type=int, default=30, help="searches after the first")
    args = parser.parse_args()
    root = project(args.issues)
    settings = load_settings(root, env={})
    ms = 1000
    with TestClient(create_app(settings)) as http:
        cold = timed(http, "/archive/search/", q="alliance")
        searches = [
            timed(http, "/archive/search/", q=QUERIES[n % len(QUERIES)])
            for n in range(args.queries)
        ]
        pages = [timed(http, "/archive/2005-06/") for _ in range(20)]
        index = http.get("/archive/search/index.json").content
    start = time.perf_counter()
    written = export_static(settings, root / "public")
    export = time.perf_counter() - start
    print(f"{args.issues} issues, {args.issues * 2} articles (sample issues repeated)")
    print(
        f"search: first {cold * ms:.0f} ms (parses every issue), then p50 "
        f"{statistics.median(searches) * ms:.1f} ms, max {max(searches) * ms:.1f} ms"
    )
    print(f"issue page: p50 {statistics.median(pages) * ms:.1f} ms, max {max(pages) * ms:.1f} ms")
    print(f"search/index.json: {len(index) / 1024:.0f} KiB")
    print(f"static export: {len(written)} files in {export:.2f} s")


if __name__ == "__main__":
    main()
