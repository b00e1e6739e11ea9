"""Memory of a real ``newsletter serve`` process under unsigned 8 MB webhook posts (RSS before/after).

    .venv/bin/python bench/webhook_flood.py                       # this checkout, 20 posts
    .venv/bin/python bench/webhook_flood.py --posts 20 --source /tmp/old-newsletter
    .venv/bin/python bench/webhook_flood.py --parallel 20     # all 20 posts at once

``--source`` runs the server from another copy of the code (e.g. ``git archive`` of an older
commit), so before/after can be compared with the same client. Bounded: at most 100 posts, at
most 20 at a time, to 127.0.0.1. Files go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "webhook_flood"
EIGHT_MB = 8 * 1024 * 1024 - 1024  # just under the limit: the old code read all of it


def project() -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", OUT / "schedule.yaml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, OUT / folder)
    return OUT


def public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M)}
    return found["VmRSS"] / 1024, found["VmHWM"] / 1024


def start(root: Path, source: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "NEWSLETTER_SECRET_KEY": "k" * 32,
        "NEWSLETTER_SENDGRID_WEBHOOK_KEY": public_key(),
    }
    command = [sys.executable, "-m", "newsletter", "--project", str(root), "serve"]
    command += ["--port", str(port), "--log-level", "error"]
    return subprocess.Popen(command, env=env, cwd=source, text=True, stdout=subprocess.DEVNULL)


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20, choices=range(1, 101), metavar="1-100")
    parser.add_argument("--source", type=Path, default=REPO, help="the code to serve from")
    parser.add_argument("--parallel", type=int, default=1, choices=range(1, 21), metavar="1-20")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = start(project(), args.source.resolve(), args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_up(url)
        before, _ = rss_mib(server.pid)
        body = b" " * EIGHT_MB

        def post(_: int) -> int:
            headers = {"Content-Type": "application/json"}
            answer = httpx.post(
                url + "/webhooks/sendgrid", content=body, headers=headers, timeout=60
            )
            return answer.status_code

        started = time.monotonic()
        with ThreadPoolExecutor(args.parallel) as pool:
            statuses = list(pool.map(post, range(args.posts)))
        elapsed = time.monotonic() - started
        time.sleep(1)
        after, peak = rss_mib(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    print(f"source: {args.source}")
    print(
        f"{args.posts} unsigned posts of {EIGHT_MB / 2**20:.1f} MiB, {args.parallel} at a time, "
        f"in {elapsed:.1f} s"
    )
    print(f"answers: {sorted(set(statuses))}")
    print(f"RSS before {before:.0f} MiB, after {after:.0f} MiB, peak {peak:.0f} MiB")


if __name__ == "__main__":
    main()
