"""Benchmark (not a test): pull N SendGrid suppression records into a list of N subscribers.

    .venv/bin/python bench/suppressions.py 1000 10000 50000

For each N: a fresh project with N active subscribers bulk-inserted into its SQLite file, the
SendGrid stand-in (in this process) serving N records spread over the four lists (half of them
addresses on the list, half strangers), then ``sync_suppressions`` timed twice: the first sync
(N/2 status changes, each a recorded event) and the second (no change: idempotent).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.delivery.sendgrid.suppressions import sync_suppressions  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.store.schema import subscribers  # noqa: E402
from newsletter.store.subscribers import SubscriberStore, email_hash, email_key  # noqa: E402
from tests.peers.sendgrid_server import SendGridServer  # noqa: E402
from tests.peers.sendgrid_suppressions import LISTS, SuppressionLists  # noqa: E402


def populate(database_url: str, count: int) -> None:
    engine = open_database(database_url)
    now = datetime.now(UTC)
    rows = [
        {
            "email": f"person{n}@example.com",
            "email_key": email_key(f"person{n}@example.com"),
            "email_hash": email_hash(f"person{n}@example.com"),
            "status": "active",
            "topics": "[]",
            "source": "import",
            "subscribed_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
    engine.dispose()


def run(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        root = folder / "project"
        root.mkdir()
        shutil.copy(REPO / "schedule.yaml", root / "schedule.yaml")
        with SendGridServer() as server:
            env = {"NEWSLETTER_SENDGRID_HOST": server.url, "SENDGRID_API_KEY": server.api_key}
            settings = load_settings(root, env=env)
            populate(settings.database_url, count)
            lists = SuppressionLists().install(server)
            for n in range(count):
                # even n: on the list; odd n: a stranger
                address = f"person{n}@example.com" if n % 2 == 0 else f"stranger{n}@example.net"
                lists.add(LISTS[(n // 2) % 4], address, created=1_700_000_000 + n)
            store = SubscriberStore(open_database(settings.database_url))
            for label in ("first", "second"):
                start = time.perf_counter()
                report = sync_suppressions(settings, store)
                seconds = time.perf_counter() - start
                print(
                    f"N={count:>7} {label:>6} sync: {report.fetched} records, "
                    f"{report.changed} changed in {seconds:6.2f} s "
                    f"({report.fetched / seconds:8.0f} records/s)"
                )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"N={count:>7} peak RSS so far {peak:.0f} MB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("counts", nargs="*", type=int, default=[1000, 10000])
    for count in parser.parse_args().counts:
        run(count)


if __name__ == "__main__":
    main()
