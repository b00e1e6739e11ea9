"""Time a CSV import of N generated rows into a fresh SQLite file; print rows/s and peak RSS.

    .venv/bin/python bench/import_csv.py                  # 100,000 rows through import_csv()
    .venv/bin/python bench/import_csv.py --rows 20000 --cli   # through `newsletter subscribers import`
    .venv/bin/python bench/import_csv.py --again          # also time a second import of the same file
    .venv/bin/python bench/import_csv.py --runs 3 --floor # min/median of 3, and the lean floor

Files go to bench/out/ (git-ignored). The peak RSS of a --cli run is the child process's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))

from newsletter.models import SubscriberStatus  # noqa: E402
from newsletter.store.csv_io import import_csv  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.store.subscribers import SubscriberStore  # noqa: E402


def generate(path: Path, rows: int) -> None:
    """A realistic file: mixed-case addresses, names with commas, quotes and accents, 1% duplicates."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "organisation"])
        for n in range(rows):
            if n % 100 == 99:
                writer.writerow([f"Person{n - 1}@Example.ORG", "", ""])  # duplicate, case only
                continue
            name = (
                ("Gagné, Chloé" if n % 3 == 0 else f'Pat "P{n}" Doe')
                if n % 7 == 0
                else f"Person {n}"
            )
            writer.writerow([f"person{n}@example.org", name, "Clinic, Unit 4"])


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def run_function(db: Path, csv_path: Path, again: bool) -> float:
    store = SubscriberStore(open_database(f"sqlite:///{db}"))
    first = 0.0
    for attempt in ("first", "second") if again else ("first",):
        started = time.perf_counter()
        report = import_csv(store, csv_path, status=SubscriberStatus.ACTIVE)
        elapsed = time.perf_counter() - started
        first = first or elapsed
        rows = len(report.rows)
        print(f"{attempt} import: {rows:,} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s")
        print(f"  {report.summary()}")
    print(f"peak RSS: {peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB")
    store.engine.dispose()
    return first


def floor(db: Path, csv_path: Path) -> float:
    """The lean floor: csv.reader, a SHA-256 and a lower-case key per row, and sqlite3's
    executemany into a table with the same two unique indexes, one commit; no checks at all."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, email_key TEXT UNIQUE, "
        "email_hash TEXT UNIQUE, name TEXT, at TEXT)"
    )
    seen: set[str] = set()
    rows = []
    at = time.strftime("%Y-%m-%d %H:%M:%S")
    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for email, name, _org in reader:
            key = email.strip().lower()
            if key in seen:
                continue
            seen.add(key)
            digest = hashlib.sha256(key.encode()).hexdigest()
            rows.append((email.strip(), key, digest, name or None, at))
    with conn:
        conn.executemany(
            "INSERT INTO people (email, email_key, email_hash, name, at) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    conn.close()
    return time.perf_counter() - started


def run_cli(project: Path, csv_path: Path, rows: int, again: bool) -> None:
    command = [str(REPO / ".venv" / "bin" / "newsletter"), "--project", str(project)]
    command += ["subscribers", "import", str(csv_path)]
    for attempt in ("first", "second") if again else ("first",):
        started = time.perf_counter()
        subprocess.run(command, check=True)
        elapsed = time.perf_counter() - started
        print(
            f"{attempt} import (CLI): {rows:,} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s"
        )
    print(f"peak RSS of the CLI: {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cli", action="store_true", help="run the CLI in a child process")
    parser.add_argument("--again", action="store_true", help="import the same file a second time")
    parser.add_argument("--runs", type=int, default=1, help="fresh imports to time (min/median)")
    parser.add_argument("--floor", action="store_true", help="also time the lean floor (sqlite3)")
    args = parser.parse_args()
    project = OUT / "import_csv"
    shutil.rmtree(project, ignore_errors=True)
    (project / "subscribers").mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", project / "schedule.yaml")
    csv_path = project / f"people-{args.rows}.csv"
    generate(csv_path, args.rows)
    size = csv_path.stat().st_size / 1e6
    print(f"{csv_path.relative_to(REPO)}: {args.rows:,} rows, {size:.1f} MB")
    if args.cli:
        run_cli(project, csv_path, args.rows, args.again)
        return
    times, floors = [], []
    for run in range(args.runs):
        db = project / "subscribers" / f"run{run}.db"
        times.append(run_function(db, csv_path, args.again))
        if args.floor:
            floors.append(floor(project / f"floor{run}.db", csv_path))
            print(f"floor: {floors[-1]:.2f} s")
    if args.runs > 1 or args.floor:
        print(f"import: min {min(times):.2f} s, median {statistics.median(times):.2f} s")
        if floors:
            print(f"floor:  min {min(floors):.2f} s, median {statistics.median(floors):.2f} s")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
