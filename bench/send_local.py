"""Benchmark (not a test): send one issue to N readers through the outbox or SMTP, against floors.

    .venv/bin/python bench/send_local.py 20000 --transport outbox --repeat 3
    .venv/bin/python bench/send_local.py 20000 --transport smtp --repeat 3

For each run: a fresh project in a temporary folder, N active readers seeded in a child process,
then ``newsletter.send.send_issue`` timed end to end. In the same run, the floor:

- outbox: the same message's bytes (built once) written N times with the standard library's
  ``mailbox.Maildir.add`` (tmp/ then new/, no sync at all);
- smtp: the same bytes sent N times with ``smtplib`` over one connection to the same sink.

The SMTP sink runs in its own process and only counts: ``--sink aiosmtpd`` (the default) is
aiosmtpd with a counting handler; ``--sink socket`` is a bare socket server that answers every
command with the least SMTP allows and throws the message bytes away (one thread per
connection), so the sink costs as little as it can. The send runs with ``delivery.smtp.rate`` at
its maximum (``MAX_RATE``) and ``delivery.smtp.connections`` from ``--connections``.
"""

from __future__ import annotations

import argparse
import mailbox
import multiprocessing
import multiprocessing.connection
import os
import resource
import smtplib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import MONTH, make_project, seed_apart  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.delivery.smtp import MAX_RATE  # noqa: E402
from newsletter.issues import load_topics, read_issue  # noqa: E402
from newsletter.send import send_issue  # noqa: E402
from newsletter.store.database import Database  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402


def sink(conn: multiprocessing.connection.Connection) -> None:
    """An SMTP server that accepts and counts."""
    from aiosmtpd.controller import Controller

    class Counting:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Counting.count += 1
            return "250 2.0.0 OK"

    from tests.peers.smtp_server import _free_port

    port = _free_port()
    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    conn.send(port)
    conn.recv()
    conn.send(Counting.count)
    controller.stop()


def socket_sink(conn: multiprocessing.connection.Connection) -> None:
    """A discarding SMTP server: 250 to everything, 354 to DATA, counts the messages."""
    import socket
    import threading

    count = [0]
    lock = threading.Lock()

    def serve(client: socket.socket) -> None:
        client.sendall(b"220 sink ESMTP\r\n")
        buffer, in_data = b"", False
        while chunk := client.recv(262144):
            buffer += chunk
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        buffer = buffer[-4:]
                        break
                    buffer, in_data = buffer[end + 5 :], False
                    with lock:
                        count[0] += 1
                    client.sendall(b"250 2.0.0 OK\r\n")
                    continue
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                line, buffer = buffer[:end].upper(), buffer[end + 2 :]
                if line.startswith(b"DATA"):
                    in_data = True
                    client.sendall(b"354 go ahead\r\n")
                    buffer = b"\r\n" + buffer  # the end mark may follow at once
                elif line.startswith((b"EHLO", b"HELO")):
                    client.sendall(b"250-sink\r\n250 8BITMIME\r\n")
                elif line.startswith(b"QUIT"):
                    client.sendall(b"221 bye\r\n")
                    client.close()
                    return
                else:
                    client.sendall(b"250 OK\r\n")
        client.close()

    server = socket.create_server(("127.0.0.1", 0))
    conn.send(server.getsockname()[1])

    def accept() -> None:
        while True:
            client, _ = server.accept()
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    conn.recv()
    with lock:
        conn.send(count[0])


def prebuilt(settings: Any, issue: Any) -> bytes:
    from newsletter.mime import build_message
    from newsletter.models import Recipient
    from newsletter.renderings import Renderings
    from newsletter.send import outgoing

    rendered = Renderings(settings, issue).get(None)
    reader = Recipient.with_links(
        subscriber_id=1,
        email="r1@example.com",
        name="Reader 1",
        unsubscribe_url=settings.links.unsubscribe_url("u1"),
        preferences_url=settings.links.preferences_url("p1"),
        message_id="<2021-01.1.abc@example.org>",
    )
    message = outgoing(settings, rendered, (reader,), rendered.subject)
    return build_message(message, reader).as_bytes()


def run(count: int, transport: str, sink_kind: str, connections: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        root = make_project(Path(tmp), 1000)
        text = (root / "schedule.yaml").read_text(encoding="utf-8")
        text = text.replace("transport: sendgrid", f"transport: {transport}")
        text = text.replace("security: starttls", "security: none")
        text = text.replace("username: newsletter", "username:")
        text = text.replace("rate: 20 ", f"rate: {MAX_RATE:g} ")
        text = text.replace("connections: 3 ", f"connections: {connections} ")
        (root / "schedule.yaml").write_text(text, encoding="utf-8")
        database = root / "subscribers" / "subscribers.db"
        env = {"NEWSLETTER_SECRET_KEY": "bench-" + "k" * 32}
        open_database(f"sqlite:///{database}").dispose()
        seed_apart(database, count, None)
        server = None
        if transport == "smtp":
            parent, child = multiprocessing.Pipe()
            target = socket_sink if sink_kind == "socket" else sink
            server = multiprocessing.Process(target=target, args=(child,), daemon=True)
            server.start()
            port = parent.recv()
            text = text.replace("port: 587", f"port: {port}").replace(
                "host: localhost", "host: 127.0.0.1"
            )
            (root / "schedule.yaml").write_text(text, encoding="utf-8")
        settings = load_settings(root, env=env)
        issue = read_issue(root / "issues" / f"{MONTH}.md", load_topics(settings.topics_file))
        data = prebuilt(settings, issue)
        started = time.perf_counter()
        if transport == "smtp":
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for _ in range(count):
                    smtp.sendmail("newsletter@example.org", ["r1@example.com"], data)
        else:
            box = mailbox.Maildir(Path(tmp) / "floor-box", create=True)
            for _ in range(count):
                box.add(data)
        floor = time.perf_counter() - started
        started = time.perf_counter()
        with Database.open(settings.database_url) as db:
            summary = send_issue(settings, db, issue)
        seconds = time.perf_counter() - started
        if server is not None:
            parent.send("stop")
            received = parent.recv()
            server.join(timeout=10)
            if received != 2 * count:
                raise SystemExit(f"MISMATCH: the sink got {received:,}, expected {2 * count:,}")
        if summary.sent != count:
            raise SystemExit(f"MISMATCH: sent {summary.sent:,} of {count:,}")
        return seconds, floor, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000])
    parser.add_argument("--transport", choices=("outbox", "smtp"), default="outbox")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sink", choices=("aiosmtpd", "socket"), default="aiosmtpd")
    parser.add_argument("--connections", type=int, default=3)
    args = parser.parse_args()
    print(
        f"transport {args.transport}; sink {args.sink}; connections {args.connections}; "
        f"cores {os.cpu_count()}"
    )
    print(
        "| readers | seconds | messages/s | floor (s) | floor/s | ×floor speed | load avg | bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.sizes:
        ratios = []
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            seconds, floor, size = run(count, args.transport, args.sink, args.connections)
            ratios.append(floor / seconds)
            print(
                f"| {count:,} | {seconds:.1f} | {count / seconds:,.0f} | {floor:.1f} "
                f"| {count / floor:,.0f} | {floor / seconds:.2f} | {load:.2f} | {size:,} |",
                flush=True,
            )
        print(f"  speed vs floor: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
