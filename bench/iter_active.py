"""Time streaming the active list the way a send run does (keyset pages); print rows/s and peak RSS.

    .venv/bin/python bench/iter_active.py --rows 200000 [--batch 1000]

The database (bench/out/iter_active.db, git-ignored) is filled with bulk inserts, not imports.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))

from newsletter.models import SubscriberStatus  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.store.subscribers import SubscriberStore, new_subscriber_values  # noqa: E402
from newsletter.values.clock import now_utc  # noqa: E402


def people(rows: int) -> Iterator[dict[str, Any]]:
    at = now_utc()
    for n in range(rows):
        status = SubscriberStatus.UNSUBSCRIBED if n % 50 == 0 else SubscriberStatus.ACTIVE
        yield new_subscriber_values(
            f"person{n}@example.org",
            name=f"Person {n}",
            status=status,
            source="import",
            source_detail="bench",
            ip=None,
            topics=(),
            at=at,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    database = OUT / "iter_active.db"
    for leftover in OUT.glob("iter_active.db*"):
        leftover.unlink()
    store = SubscriberStore(open_database(f"sqlite:///{database}"))
    started = time.perf_counter()
    store.bulk_apply(people(args.rows), (), source="import", source_detail="bench")
    print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    streamed = sum(len(batch) for batch in store.iter_active(batch_size=args.batch))
    elapsed = time.perf_counter() - started
    print(f"iter_active: {streamed:,} active in {elapsed:.2f} s = {streamed / elapsed:,.0f} rows/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB (after filling: {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
