"""The same list and send on PostgreSQL: a configuration change, not a rewrite.

A throwaway PostgreSQL cluster (Debian's `postgresql` package, which .ci/run installs) is started
on 127.0.0.1 for this module and removed after. Skipped with a reason where PostgreSQL or psycopg is
missing, except in CI, where it must run.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main


def _initdb() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else None


def _missing() -> str | None:
    if _initdb() is None:
        return "PostgreSQL server binaries not installed (Debian package postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed"
    return None


def _as_postgres(*command: str) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    initdb = _initdb()
    assert initdb is not None
    bin_dir = Path(initdb).parent
    # Not under pytest's tmp folder: that one is private to root, and the server runs as postgres.
    data = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_postgres(str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres"), **run
    )
    options = f"-h 127.0.0.1 -p {port} -k {data}"
    subprocess.run(
        _as_postgres(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "start",
            "-l",
            str(data / "log"),
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
            timeout=60,
        )


def test_list_and_send_work_on_postgresql(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", postgres_url)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k" * 32)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--project", str(project), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "6 added" in cli("subscribers", "import", "subscribers/sample.csv", "--status", "active")
    assert "6 duplicate" in cli("subscribers", "import", "subscribers/sample.csv")
    cli("subscribers", "add", "Late.Comer@Example.ORG", "--name", "Late Comer")
    cli("subscribers", "remove", "late.comer@example.org")
    assert "unsubscribed" in cli("subscribers", "show", "LATE.COMER@example.org")
    cli("send", "2021-01", "--yes")
    assert "already sent" in cli("send", "2021-01", "--yes")
    report = json.loads(cli("report", "2021-01", "--json"))
    assert report["status"] == "completed"
    assert report["counts"] == {"pending": 0, "sent": 6, "failed": 0, "unconfirmed": 0}
    delivered = list((project / "outbox" / "new").iterdir())
    assert len(delivered) == 6
    assert not any("late.comer" in path.read_text(encoding="utf-8").lower() for path in delivered)
