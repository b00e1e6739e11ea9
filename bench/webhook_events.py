"""Time signed SendGrid event posts that change statuses, through a real uvicorn server on 127.0.0.1.

    .venv/bin/python bench/webhook_events.py                  # 1,000 events a post, 3 runs
    .venv/bin/python bench/webhook_events.py --events 2000 --runs 5

Each run posts N events about N different readers, half ``bounce`` and half ``unsubscribe``, so
every event is a status change (each recorded as a subscriber event with SendGrid's event id);
then the same post again (a replay: nothing changes). The floor, measured in the same run: a post
of N ``open`` events (signature check, JSON and the HTTP round trip; an open changes nothing).
Prints min/median of the runs and the load average. Files go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "webhook_events"
sys.path.insert(0, str(REPO))

from newsletter.config import Settings, load_settings  # noqa: E402
from newsletter.models import SubscriberStatus  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.store.subscribers import (  # noqa: E402
    SubscriberStore,
    email_key,
    new_subscriber_values,
)
from newsletter.web.app import create_app  # noqa: E402


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


def readers(store: SubscriberStore, first: int, count: int) -> list[tuple[int, int]]:
    """``count`` new active readers, added in one transaction (not timed): (n, id) each."""
    at = datetime.now(UTC)
    addresses = [f"reader{n}@example.com" for n in range(first, first + count)]
    rows = [
        new_subscriber_values(
            address,
            name=None,
            status=SubscriberStatus.ACTIVE,
            source="import",
            source_detail="bench",
            ip=None,
            topics=(),
            at=at,
        )
        for address in addresses
    ]
    store.bulk_apply(rows, (), source="import", source_detail="bench")
    found = store.by_keys([email_key(address) for address in addresses])
    return [(n, found[email_key(address)][0]) for n, address in enumerate(addresses, start=first)]


def post(
    http: httpx.Client, key: ec.EllipticCurvePrivateKey, events: list[dict[str, object]]
) -> tuple[float, dict[str, int]]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256())))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    answer = http.post("/webhooks/sendgrid", content=body, headers=headers, timeout=300)
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return took, answer.json()


def events(
    people: list[tuple[int, int]], run: int, kinds: tuple[str, ...]
) -> list[dict[str, object]]:
    return [
        {
            "email": f"reader{n}@example.com",
            "event": kinds[i % len(kinds)],
            "type": "bounce",
            "reason": "550 5.1.1 unknown user",
            "sg_event_id": f"bench-{run}-{kinds[i % len(kinds)]}-{n}",
            "newsletter_subscriber_id": str(subscriber_id),
            "newsletter_issue": "2021-01",
            "timestamp": int(time.time()),
        }
        for i, (n, subscriber_id) in enumerate(people)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events in one post")
    parser.add_argument("--runs", type=int, default=3, choices=range(1, 21), metavar="1-20")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for name in ("schedule.yaml",):
        shutil.copy(REPO / name, OUT / name)
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, OUT / folder)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = load_settings(
        OUT,
        env={
            "NEWSLETTER_SECRET_KEY": "b" * 40,
            "NEWSLETTER_SENDGRID_WEBHOOK_KEY": base64.b64encode(public).decode(),
        },
    )
    store = SubscriberStore(open_database(settings.database_url))
    server = Server(settings)
    changing: list[float] = []
    replays: list[float] = []
    floors: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for run in range(args.runs):
                people = readers(store, run * args.events, args.events)
                floor, _ = post(http, key, events(people, run, ("open",)))
                took, outcome = post(http, key, events(people, run, ("bounce", "unsubscribe")))
                again, replay = post(http, key, events(people, run, ("bounce", "unsubscribe")))
                assert outcome["status_changes"] == args.events, outcome
                assert replay["status_changes"] == 0, replay
                changing.append(took)
                replays.append(again)
                floors.append(floor)
                print(
                    f"run {run + 1}: {args.events} status-changing events {took:.3f} s "
                    f"({args.events / took:,.0f} events/s); replay {again:.3f} s; "
                    f"floor (opens) {floor:.3f} s; load {os.getloadavg()[0]:.2f}"
                )
    finally:
        server.stop()

    def rate(seconds: list[float]) -> str:
        best, middle = min(seconds), statistics.median(seconds)
        return (
            f"min {best:.3f} s / median {middle:.3f} s = "
            f"{args.events / best:,.0f} / {args.events / middle:,.0f} events/s"
        )

    print(f"status changes: {rate(changing)}")
    print(f"replay:         {rate(replays)}")
    print(f"floor (opens):  {rate(floors)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
