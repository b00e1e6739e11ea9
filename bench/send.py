"""Benchmark (not a test): send one issue to N subscribers through the SendGrid stand-in.

    .venv/bin/python bench/send.py 10000 100000 1000000

For each N: a fresh project in a temporary folder, N active subscribers bulk-inserted into its
SQLite file, the stand-in started in a *separate process* (so it does not take the sender's
GIL), then ``newsletter.send.send_issue`` timed end to end (render, ledger, signing, JSON,
HTTP). Prints recipients per second and the sender's peak RSS (seeding runs in a child process,
so it is not counted). By default the stand-in runs in
its light mode: every request is checked against SendGrid's limits but only one in
``--validate-every`` against the full JSON Schema (the schema validator would otherwise be the
bottleneck of the benchmark, not the sender); the output says so.

``--latency S`` makes the stand-in hold every Mail Send request S seconds (SendGrid's own latency)
and ``--concurrency N`` sets ``delivery.sendgrid.concurrency`` (default: the schedule.yaml's, 8).

``--floor`` also times, in the same run and against the same stand-in, the least any sender must
do: stream the readers from SQLite (one cursor), sign the two tokens, build the same Mail Send
JSON (same fields, same JSON library) and POST it over one keep-alive connection. No ledger, no
checks, no threads. The sender's target is at most 1.5× that.

``--topics`` gives the readers random topics and modes (a realistic mix, seeded: 70 % no topics,
20 % ``all`` with 1–3 topics, 10 % ``only`` with 1–3 topics), so the send renders several
variants and batches readers by variant; ``only`` readers with none of the issue's topics are
recorded skipped, and the check counts them.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.issues import load_topics, read_issue  # noqa: E402
from newsletter.renderings import Renderings  # noqa: E402
from newsletter.send import Progress, SendSummary, send_issue  # noqa: E402
from newsletter.store.database import Database  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402

MONTH = "2021-01"


def serve(
    conn: multiprocessing.connection.Connection,
    validate_every: int,
    light: bool,
    latency: float = 0.0,
) -> None:
    """The stand-in's process: report its URL, serve until told to stop, report counts."""

    from tests.peers.sendgrid_server import Answer, SendGridServer

    class LightServer(SendGridServer):
        """Checks one request in ``validate_every`` fully (schema + limits); counts the rest."""

        def _mail_send_now(self, body: Any) -> Answer:
            with self._lock:
                self._light_seen = getattr(self, "_light_seen", 0) + 1
                sampled = (self._light_seen - 1) % max(1, validate_every) == 0
            if sampled:
                return super()._mail_send_now(body)
            with self._lock:
                self.accepted_count += 1
                self.recipient_count += len(body["personalizations"])
            return Answer(202, None, {"X-Message-Id": f"light-{self._light_seen}"})

    kind = LightServer if light else SendGridServer
    with kind(validate_every=validate_every, record=False, latency=latency) as server:
        conn.send((server.url, server.api_key))
        conn.recv()
        conn.send((server.accepted_count, server.recipient_count, len(server.rejected)))


def make_project(folder: Path, batch_size: int, concurrency: int | None = None) -> Path:
    root = folder / "project"
    root.mkdir()
    for name in ("issues", "templates"):
        shutil.copytree(REPO / name, root / name)
    text = (REPO / "schedule.yaml").read_text(encoding="utf-8")
    text = text.replace("transport: outbox", "transport: sendgrid")
    text = text.replace("batch_size: 1000", f"batch_size: {batch_size}")
    if concurrency is not None:
        text = text.replace("concurrency: 8 ", f"concurrency: {concurrency} ")
    (root / "schedule.yaml").write_text(text, encoding="utf-8")
    return root


def topic_choice(rng: random.Random, topics: tuple[str, ...]) -> tuple[str, str]:
    """(topics JSON, mode) of one reader: 70 % none, 20 % all with 1–3, 10 % only with 1–3."""
    draw = rng.random()
    if draw < 0.7:
        return "[]", "all"
    # In the vocabulary's order, as the preferences page saves them (its checkboxes' order).
    chosen = [topics[i] for i in sorted(rng.sample(range(len(topics)), rng.randint(1, 3)))]
    return json.dumps(chosen), "all" if draw < 0.9 else "only"


def seed(database: Path, count: int, topics: tuple[str, ...] | None = None) -> float:
    """Insert ``count`` active subscribers with one executemany per 50,000; return seconds."""
    started = time.perf_counter()
    conn = sqlite3.connect(database)
    now = "2026-01-01 00:00:00.000000"
    sql = (
        "INSERT INTO subscribers (email, email_key, email_hash, name, status, topics, topic_mode,"
        " source, subscribed_at, confirmed_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?,"
        " 'import', ?, ?, ?)"
    )
    rng = random.Random(20261201)
    with conn:
        for start in range(0, count, 50_000):
            rows = [
                (
                    f"r{i}@example.com",
                    f"r{i}@example.com",
                    f"{i:064x}",
                    f"Reader {i}",
                    *(topic_choice(rng, topics) if topics else ("[]", "all")),
                    now,
                    now,
                    now,
                )
                for i in range(start, min(count, start + 50_000))
            ]
            conn.executemany(sql, rows)
    conn.close()
    return time.perf_counter() - started


def seed_apart(database: Path, count: int, topics: tuple[str, ...] | None) -> float:
    """``seed`` in a child process, so the peak RSS measured is the sender's alone; seconds."""
    started = time.perf_counter()
    child = multiprocessing.Process(target=seed, args=(database, count, topics))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"seeding failed (exit {child.exitcode})")
    return time.perf_counter() - started


class Ticker(Progress):
    """A line every 10 s, so a long run shows it is alive."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.started = self.last = time.perf_counter()

    def start(self, total: int, *, issue: str, transport: str) -> None:
        self.total = total
        self.started = self.last = time.perf_counter()

    def advance(self, sent: int, failed: int) -> None:
        self.done += sent + failed
        now = time.perf_counter()
        if now - self.last >= 10:
            self.last = now
            rate = self.done / (now - self.started)
            print(f"    … {self.done:,}/{self.total:,} ({rate:,.0f}/s)", flush=True)


def run(
    count: int,
    batch_size: int,
    validate_every: int,
    light: bool,
    topics: bool = False,
    latency: float = 0.0,
    concurrency: int | None = None,
    floor: bool = False,
) -> tuple[SendSummary, float, float, float, float | None]:
    """One benchmark run: (summary, seconds, seeding seconds, sender CPU seconds, floor seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        root = make_project(Path(tmp), batch_size, concurrency)
        database = root / "subscribers" / "subscribers.db"
        env = {"NEWSLETTER_SECRET_KEY": "bench-" + "k" * 32}
        url = f"sqlite:///{database}"
        open_database(url).dispose()
        settings = load_settings(root, env=env)
        seeding = seed_apart(database, count, load_topics(settings.topics_file) if topics else None)
        parent, child = multiprocessing.Pipe()
        server = multiprocessing.Process(
            target=serve, args=(child, validate_every, light, latency), daemon=True
        )
        server.start()
        host, key = parent.recv()
        env |= {"NEWSLETTER_SENDGRID_HOST": host, "SENDGRID_API_KEY": key}
        settings = load_settings(root, env=env)
        issue = read_issue(root / "issues" / f"{MONTH}.md", load_topics(settings.topics_file))
        floor_seconds = None
        if floor:
            floor_seconds = floor_apart(settings, issue, database, host, key, batch_size)
        # As the floor does before its clock starts: the render pipeline's and the SendGrid
        # library's imports (mjml, premailer, sendgrid: ~0.7 s once per process) are not part
        # of the send's throughput. The send still renders the issue on the clock.
        Renderings(settings, issue).get(None)
        importlib.import_module("newsletter.delivery.sendgrid.transport")
        global BEFORE_SEND
        BEFORE_SEND = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started, cpu = time.perf_counter(), _cpu_seconds()
        with Database.open(settings.database_url) as database:
            summary = send_issue(settings, database, issue, progress=Ticker())
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        parent.send("stop")
        requests, recipients, rejected = parent.recv()
        server.join(timeout=10)
        expected = count - summary.skipped
        if floor:
            recipients -= count  # the floor's copies
        if recipients != expected or rejected or summary.sent != expected:
            raise SystemExit(
                f"MISMATCH: sent {summary.sent:,} (skipped {summary.skipped:,}), stand-in got "
                f"{recipients:,} in {requests:,} requests, {rejected} rejected"
            )
        return summary, seconds, seeding, cpu, floor_seconds


BEFORE_SEND = 0.0  # peak RSS (MB) when the last send started: imports, render, the stand-in's pipe


def floor_apart(
    settings: Any, issue: Any, database: Path, host: str, key: str, batch_size: int
) -> float:
    """``run_floor`` in a forked child, so its memory is not the sender's peak RSS."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()

    def floor_child() -> None:
        child.send(run_floor(settings, issue, database, host, key, batch_size))

    process = context.Process(target=floor_child)
    process.start()
    seconds = float(parent.recv())
    process.join()
    return seconds


def run_floor(
    settings: Any, issue: Any, database: Path, host: str, key: str, batch_size: int
) -> float:
    """The lean floor: stream, sign, the same JSON, one keep-alive connection; seconds."""
    from urllib.parse import urlsplit

    from newsletter.delivery.sendgrid import transport as sg
    from newsletter.models import Placeholder
    from newsletter.renderings import Renderings
    from newsletter.store.ledger import MessageIds
    from newsletter.tokens import Purpose, load_signer

    dumps = sg.dumps  # the sender's JSON encoder (bytes)
    rendered = Renderings(settings, issue).get(None)
    signer = load_signer(settings)
    sign, unsubscribe, preferences = signer.sign, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES
    unsub_base = settings.links.unsubscribe_url("")
    prefs_base = settings.links.preferences_url("")
    message_id = MessageIds(issue.month, settings.sender.email).for_id
    sender = {"email": settings.sender.email, "name": settings.sender.name}
    content = [{"type": "text/plain", "value": rendered.text}]
    if rendered.html is not None:
        content.append({"type": "text/html", "value": rendered.html})
    unsub_key, prefs_key = str(Placeholder.UNSUBSCRIBE_URL), str(Placeholder.PREFERENCES_URL)
    one_click = "List-Unsubscribe=One-Click"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json; charset=utf-8",
    }
    started = time.perf_counter()
    conn = http.client.HTTPConnection(urlsplit(host).netloc)
    db = sqlite3.connect(database)
    cursor = db.execute(
        "SELECT id, email, name FROM subscribers WHERE status = 'active' ORDER BY id"
    )
    while rows := cursor.fetchmany(batch_size):
        personalizations = []
        for sid, email, name in rows:
            unsub = unsub_base + sign(unsubscribe, sid)
            personalizations.append(
                {
                    "to": [{"email": email, "name": name}],
                    "substitutions": {
                        unsub_key: unsub,
                        prefs_key: prefs_base + sign(preferences, sid),
                    },
                    "headers": {
                        "Message-ID": message_id(sid),
                        "List-Unsubscribe": f"<{unsub}>",
                        "List-Unsubscribe-Post": one_click,
                    },
                    "custom_args": {
                        sg.CUSTOM_ARG_ISSUE: issue.month,
                        sg.CUSTOM_ARG_SUBSCRIBER: str(sid),
                    },
                }
            )
        body = {
            "personalizations": personalizations,
            "from": sender,
            "subject": rendered.subject,
            "content": content,
            "tracking_settings": {"subscription_tracking": {"enable": False}},
            "mail_settings": {"sandbox_mode": {"enable": False}},
        }
        conn.request("POST", "/v3/mail/send", dumps(body), headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 202:
            raise SystemExit(f"floor: HTTP {answer.status}")
    conn.close()
    db.close()
    return time.perf_counter() - started


def _cpu_seconds() -> float:
    """CPU time of this (the sending) process so far, all threads, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--validate-every",
        type=int,
        default=100,
        help="full JSON Schema check on one request in this many (1: every request)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="check SendGrid's limits on every request (the schema still 1 in --validate-every)",
    )
    parser.add_argument(
        "--topics",
        action="store_true",
        help="readers with random topics and modes (70 %% none, 20 %% all, 10 %% only)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight")
    parser.add_argument("--floor", action="store_true", help="also time the lean floor")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (min/median)")
    args = parser.parse_args()
    mode = "every request" if args.validate_every == 1 else f"1 in {args.validate_every} requests"
    checked = (
        "SendGrid's limits on every request"
        if args.full
        else "SendGrid's limits on the same sample (the other requests only parsed and counted)"
    )
    print(f"SendGrid stand-in in its own process; JSON Schema validation of {mode}, {checked}")
    readers = "random topics and modes" if args.topics else "no topics (one variant)"
    print(f"cores: {os.cpu_count()}, batch size {args.batch_size}, readers: {readers}")
    print(f"latency {args.latency:g} s per request, concurrency {args.concurrency or 'default'}")
    print(
        "| recipients | seconds | readers/s | CPU µs/reader | peak RSS (MB) | RSS before send "
        "| floor (s) | ×floor "
        "| load avg | sent | skipped |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.sizes:
        times: list[float] = []
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            summary, seconds, _seeding, cpu, floor = run(
                count,
                args.batch_size,
                args.validate_every,
                light=not args.full,
                topics=args.topics,
                latency=args.latency,
                concurrency=args.concurrency,
                floor=args.floor,
            )
            times.append(seconds)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            ratio = f"{seconds / floor:.2f}" if floor else "–"
            floor_text = f"{floor:.1f}" if floor else "–"
            print(
                f"| {count:,} | {seconds:.1f} | {count / seconds:,.0f} "
                f"| {cpu / count * 1e6:.0f} | {peak:.0f} | {BEFORE_SEND:.0f} | {floor_text} "
                f"| {ratio} | {load:.2f} "
                f"| {summary.sent:,} | {summary.skipped:,} |",
                flush=True,
            )
        if len(times) > 1:
            print(f"  {count:,}: min {min(times):.1f} s, median {statistics.median(times):.1f} s")


if __name__ == "__main__":
    main()
