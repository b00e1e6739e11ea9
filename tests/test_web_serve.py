"""``newsletter serve`` as a real process: mail credentials checked at start, tokens kept out of its log."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from newsletter.config import load_settings
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import Purpose, load_signer

SECRET = {"NEWSLETTER_SECRET_KEY": "k" * 32}


def use_transport(project: Path, name: str) -> None:
    """Switch ``delivery.transport`` in the project's schedule.yaml."""
    schedule = project / "schedule.yaml"
    text = schedule.read_text(encoding="utf-8")
    schedule.write_text(re.sub(r"transport: \w+", f"transport: {name}", text, count=1))


def serve_command(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "--project", str(project), "serve", *args]


def run_serve(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        serve_command(project, "--port", "0", *args),
        env={**os.environ, **SECRET},
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextmanager
def serving_process(project: Path, *args: str) -> Iterator[tuple[int, list[str]]]:
    """``newsletter serve`` on a free port; yields the port and, after the block, every stderr line."""
    process = subprocess.Popen(
        serve_command(project, "--port", "0", *args),
        env={**os.environ, **SECRET},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    stderr = process.stderr
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        port = None
        while port is None:
            seen.append(lines.get(timeout=20))  # bounded: queue.Empty fails the test
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", seen[-1])
            port = int(found.group(1)) if found else None
        yield port, seen
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        reader.join(timeout=5)
        while not lines.empty():
            seen.append(lines.get())


def test_serve_without_the_sendgrid_key_refuses_to_start(project: Path, clean_env: None) -> None:
    use_transport(project, "sendgrid")
    result = run_serve(project)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "SENDGRID_API_KEY is not set" in message
    assert "--allow-no-mail" in message
    assert "Traceback" not in result.stderr
    assert "serving" not in result.stdout


def test_serve_with_smtp_login_but_no_password_refuses_to_start(
    project: Path, clean_env: None
) -> None:
    use_transport(project, "smtp")  # the sample schedule.yaml has `username: newsletter`
    result = run_serve(project)
    assert result.returncode == 2
    assert "NEWSLETTER_SMTP_PASSWORD" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_allow_no_mail_starts_and_warns_once(project: Path, clean_env: None) -> None:
    use_transport(project, "sendgrid")
    with serving_process(project, "--allow-no-mail") as (port, lines):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).text == "ok\n"
        assert httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=10).status_code == 200
    warnings = [line for line in lines if "--allow-no-mail" in line]
    assert len(warnings) == 1, lines
    assert "WARNING" in warnings[0] and "SENDGRID_API_KEY" in warnings[0]


def test_the_log_of_serve_shows_no_link_token(project: Path, clean_env: None) -> None:
    settings = load_settings(project, env=SECRET)
    store = SubscriberStore(open_database(settings.database_url))
    person = store.add("reader@example.com", name="Rea Der")
    signer = load_signer(settings)
    tokens = {purpose: signer.sign(purpose, person.id) for purpose in Purpose}
    with (
        serving_process(project, "--log-level", "debug") as (port, lines),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        for purpose, token in tokens.items():
            http.get(f"/{purpose.value}/{token}")
        answers = [http.post(f"/preferences/{tokens[Purpose.PREFERENCES]}") for _ in range(31)]
        assert answers[-1].status_code == 429  # the rate-limit warning names the path
        database = settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as conn:
            conn.execute("ALTER TABLE subscribers RENAME TO gone")
        broken = http.get(f"/unsubscribe/{tokens[Purpose.UNSUBSCRIBE]}")
        assert broken.status_code == 500  # logged with its traceback
    log = "".join(lines)
    assert "rate limit" in log and "/preferences/…" in log
    assert "GET /unsubscribe/… failed" in log and "Traceback" in log
    assert '"GET /confirm/…" 200' in log
    for token in tokens.values():
        assert token not in log
    assert "reader@example.com" not in log


def test_serve_without_the_archive_search_script_refuses_to_start(
    project: Path, clean_env: None
) -> None:
    """A missing templates/web/archive_search.js stops the start, named, not a visitor's search."""
    (project / "templates" / "web" / "archive_search.js").unlink()
    result = run_serve(project, "--allow-no-mail")
    assert result.returncode == 2, result.stderr
    assert "archive_search.js: not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert "serving" not in result.stdout
