"""Measure the public web app through a real uvicorn server on 127.0.0.1; print timings and peak RSS.

    .venv/bin/python bench/web.py                     # 300 one-click unsubscribes, 1000 webhook events
    .venv/bin/python bench/web.py --readers 2000 --events 2000 --issues 36

What it times: the RFC 8058 one-click POST (latency p50/p95/max, one request at a time), one signed
SendGrid webhook post of N delivered events, then N bounce events (verify + apply), the same post replayed (nothing
changes), and the archive listing with M archived issues (first request parses, later ones cached).
Files go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "web"
sys.path.insert(0, str(REPO))

from newsletter.config import Settings, load_settings  # noqa: E402
from newsletter.delivery.memory import MemoryTransport  # noqa: E402
from newsletter.issues import load_topics, read_issue  # noqa: E402
from newsletter.send import send_issue  # noqa: E402
from newsletter.store.database import Database  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.store.subscribers import SubscriberStore  # noqa: E402
from newsletter.tokens import Purpose, load_signer  # noqa: E402
from newsletter.web.app import create_app  # noqa: E402

MONTH = "2021-01"


def project() -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", OUT / "schedule.yaml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, OUT / folder)
    return OUT


def archive(root: Path, issues: int) -> None:
    """``issues`` archived months, each a copy of a sample issue (as a completed send leaves it)."""
    samples = sorted((root / "issues").glob("20*.md"))
    for number in range(issues):
        month = f"{2000 + number // 12}-{number % 12 + 1:02d}"
        folder = root / "archive" / month
        folder.mkdir(parents=True)
        shutil.copy(samples[number % len(samples)], folder / "issue.md")
        (folder / "index.html").write_text("<!doctype html><p>web version</p>")
        (folder / "email.txt").write_text("text")
        record = {
            "issue": month,
            "subject": f"Issue {month}",
            "started_at": None,
            "finished_at": None,
        }
        (folder / "send.json").write_text(json.dumps(record))


class Server:
    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def one_click(http: httpx.Client, settings: Settings, ids: list[int]) -> list[float]:
    signer = load_signer(settings)
    took = []
    for subscriber_id in ids:
        path = f"/unsubscribe/{signer.sign(Purpose.UNSUBSCRIBE, subscriber_id)}"
        started = time.perf_counter()
        answer = http.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.status_code
    return took


def webhook(
    http: httpx.Client, key: ec.EllipticCurvePrivateKey, ids: list[tuple[int, int]], kind: str
) -> tuple[float, dict[str, int]]:
    events = [
        {
            "email": f"reader{n}@example.com",
            "event": kind,
            "type": "bounce",
            "reason": "550 5.1.1 unknown user",
            "sg_event_id": f"bench-{kind}-{n}",
            "newsletter_subscriber_id": str(subscriber_id),
            "newsletter_issue": MONTH,
            "timestamp": int(time.time()),
        }
        for n, subscriber_id in ids
    ]
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(
        key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    answer = http.post("/webhooks/sendgrid", content=body, headers=headers, timeout=300)
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return took, answer.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=300, help="one-click unsubscribes to time")
    parser.add_argument(
        "--events", type=int, default=1000, help="bounce events in one webhook post"
    )
    parser.add_argument("--issues", type=int, default=24, help="archived issues")
    args = parser.parse_args()

    root = project()
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = load_settings(
        root,
        env={
            "NEWSLETTER_SECRET_KEY": "b" * 40,
            "NEWSLETTER_SENDGRID_WEBHOOK_KEY": base64.b64encode(public).decode(),
        },
    )
    store = SubscriberStore(open_database(settings.database_url))
    readers = [store.add(f"reader{n}@example.com").id for n in range(args.readers + args.events)]
    issue = read_issue(
        root / "issues" / f"{MONTH}.md", load_topics(root / "issues" / "topics.yaml")
    )
    with Database.open(settings.database_url) as database:  # the ledger rows
        send_issue(settings, database, issue, transport=MemoryTransport(max_batch=1000))
    shutil.rmtree(root / "archive")
    archive(root, args.issues)

    server = Server(settings)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            clicks = sorted(one_click(http, settings, readers[: args.readers]))
            hook_ids = list(enumerate(readers[args.readers :], start=args.readers))
            delivered, delivered_outcome = webhook(http, key, hook_ids, "delivered")
            first, outcome = webhook(http, key, hook_ids, "bounce")
            again, replay = webhook(http, key, hook_ids, "bounce")
            started = time.perf_counter()
            assert http.get("/archive/").status_code == 200
            cold = time.perf_counter() - started
            warm = []
            for _ in range(20):
                started = time.perf_counter()
                http.get("/archive/")
                warm.append(time.perf_counter() - started)
    finally:
        server.stop()

    ms = 1000
    print(
        f"one-click unsubscribe x{len(clicks)}: p50 {statistics.median(clicks) * ms:.1f} ms, "
        f"p95 {clicks[int(len(clicks) * 0.95) - 1] * ms:.1f} ms, max {clicks[-1] * ms:.1f} ms"
    )
    print(
        f"webhook, {args.events} delivered events: {delivered:.2f} s "
        f"({args.events / delivered:.0f} events/s), {delivered_outcome['ledger_changes']} ledger changes"
    )
    print(
        f"webhook, {args.events} bounce events: {first:.2f} s ({args.events / first:.0f} events/s), "
        f"{outcome['status_changes']} status changes"
    )
    print(f"webhook replayed: {again:.2f} s, {replay['status_changes']} status changes")
    print(
        f"archive listing, {args.issues} issues: first {cold * ms:.0f} ms, "
        f"then median {statistics.median(warm) * ms:.1f} ms"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (server and client in one process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
