"""A throwaway PostgreSQL server on 127.0.0.1, and a fresh database on it for each test.

Debian's `postgresql` package provides the server (.ci/run installs it). One cluster is started
for the whole session and removed after; each test that asks gets its own empty database.
Skipped with a reason where PostgreSQL or psycopg is missing, except in CI, where it must run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

_RUN = {"check": True, "capture_output": True, "timeout": 120}


def _initdb() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else None


def missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
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


@dataclass
class PostgresServer:
    """A running cluster; ``new_database()`` makes an empty database and returns its URL."""

    port: int
    _numbers: Iterator[int]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = f"t{next(self._numbers)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a generated name, never user input
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def _skip_or_fail() -> None:
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _skip_or_fail()
    initdb = _initdb()
    assert initdb is not None
    bin_dir = Path(initdb).parent
    # Not under pytest's tmp folder: that one is private to root, and the server runs as postgres.
    data = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres"), **_RUN)
    options = f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off"
    pg_ctl = str(bin_dir / "pg_ctl")
    start = [pg_ctl, "-D", str(data), "-o", options, "-w", "start", "-l", str(data / "log")]
    subprocess.run(_as_postgres(*start), **_RUN)
    try:
        yield PostgresServer(port, count(1))
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres(*stop), check=False, capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the project supports: every store test runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
