"""A database that cannot be used is one line from the real CLI, naming it and what to do.

Each case runs ``python -m newsletter`` in a subprocess on a real file: the exit code, the whole
of stderr (one line, no traceback) and the message are checked.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.errors import CorruptDatabaseError, DatabaseUnavailableError, StoreError
from newsletter.store.engine import open_database
from newsletter.store.failures import any_store_error, map_store_errors
from newsletter.store.migrations import MIGRATIONS
from newsletter.store.subscribers import SubscriberStore

PASSWORD = "s3cret-pw"


def newsletter(project: Path, *args: str, database: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    if database is not None:
        env["NEWSLETTER_DATABASE_URL"] = database
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(project), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: database "), stderr
    return lines[0]


def database_file(project: Path) -> Path:
    return project / "subscribers" / "subscribers.db"


@pytest.fixture
def real_database(project: Path, clean_env: None) -> bytes:
    """A real database with 300 subscribers, checkpointed into its one file: its bytes."""
    url = f"sqlite:///{database_file(project)}"
    engine = open_database(url)
    store = SubscriberStore(engine)
    for number in range(300):
        store.add(f"reader{number}@example.com")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return database_file(project).read_bytes()


def test_random_bytes_named_as_the_database(project: Path) -> None:
    database_file(project).write_bytes(os.urandom(64 * 1024))
    code, out, err = newsletter(project, "subscribers", "list")
    line = one_line_error(err)
    assert code == 1 and out == ""
    assert str(database_file(project)) in line
    assert "damaged or is not a SQLite database (file is not a database)" in line
    assert "restore it from a backup" in line


def test_truncated_real_database(project: Path, real_database: bytes) -> None:
    assert len(real_database) > 8 * 4096
    database_file(project).write_bytes(real_database[: len(real_database) // 2])
    code, _, err = newsletter(project, "subscribers", "stats")
    line = one_line_error(err)
    assert code == 1
    assert "damaged or is not a SQLite database" in line and "malformed" in line


def test_database_damaged_after_it_opened_fails_at_the_statement(
    project: Path, real_database: bytes
) -> None:
    """The engine maps failures at any statement, not only while opening."""
    store = SubscriberStore(open_database(f"sqlite:///{database_file(project)}"))
    database_file(project).write_bytes(real_database[:4096] + os.urandom(len(real_database)))
    with pytest.raises(CorruptDatabaseError, match="damaged") as info:
        store.add("late@example.com")  # on the connection opened before the damage
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)  # SQLite's own error
    assert "malformed" in str(info.value)


def test_database_path_under_a_regular_file(project: Path) -> None:
    (project / "somefile").write_text("a file, not a folder\n")
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("sqlite:///subscribers/", "sqlite:///somefile/sub/"))
    code, _, err = newsletter(project, "subscribers", "list")
    line = one_line_error(err)
    assert code == 1
    assert f"cannot create {project / 'somefile' / 'sub'}" in line
    assert "Not a directory" in line


def test_database_path_that_is_a_folder(project: Path) -> None:
    """SQLite itself cannot open it (a case root meets too, unlike permissions)."""
    database_file(project).mkdir()
    code, _, err = newsletter(project, "subscribers", "list")
    line = one_line_error(err)
    assert code == 1
    assert "cannot open or write it (unable to open database file)" in line


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads files of mode 000 and folders without permission: nothing to refuse",
)
def test_database_file_without_permission(project: Path, real_database: bytes) -> None:
    database_file(project).chmod(0o000)
    try:
        code, _, err = newsletter(project, "subscribers", "list")
    finally:
        database_file(project).chmod(0o600)
    line = one_line_error(err)
    assert code == 1
    assert "cannot open or write it" in line and "may read and write" in line


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads files of mode 000 and folders without permission: nothing to refuse",
)
def test_database_folder_without_permission(project: Path, real_database: bytes) -> None:
    folder = database_file(project).parent
    folder.chmod(0o000)
    try:
        code, _, err = newsletter(project, "subscribers", "list")
    finally:
        folder.chmod(0o700)
    line = one_line_error(err)
    assert code == 1
    assert "cannot open or write it" in line or "cannot create" in line


def test_server_that_is_not_there_hides_the_password(project: Path) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg for a PostgreSQL URL")
    url = f"postgresql+psycopg://editor:{PASSWORD}@127.0.0.1:9/newsletter?connect_timeout=5"
    code, _, err = newsletter(project, "subscribers", "list", database=url)
    line = one_line_error(err)
    assert code == 1
    assert PASSWORD not in err
    assert "cannot connect" in line and "editor:***@127.0.0.1:9" in line


def test_leftover_sqlalchemy_errors_become_store_errors(tmp_path: Path) -> None:
    """Errors the engine lets through (locks, constraint bugs) still become one line."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = open_database(url)
    refused = pytest.raises(StoreError, match=r"^database '.*x\.db': no such table: nowhere$")
    with refused, map_store_errors(url), engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM nowhere")
    hidden = any_store_error(sa.exc.OperationalError("x", {}, Exception("boom")), None)
    assert str(hidden) == "the database: boom"
    assert not isinstance(hidden, DatabaseUnavailableError)


def test_a_foreign_database_reaches_the_cli_funnel_as_one_line(project: Path) -> None:
    """A SQLite file of another program: its error is none the engine maps, the funnel does."""
    with sqlite3.connect(database_file(project)) as conn:
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        for name, _ in MIGRATIONS:  # it claims to be up to date
            conn.execute("INSERT INTO schema_migrations VALUES (?, '2020-01-01')", (name,))
        conn.execute("CREATE TABLE subscribers (who TEXT)")
    conn.close()
    code, _, err = newsletter(project, "subscribers", "list")
    line = one_line_error(err)
    assert code == 1
    assert line.startswith(f"error: database 'sqlite:///{database_file(project)}': ")
    assert "no such column" in line


def test_sql_errors_never_quote_the_values_they_carried(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa.exc.IntegrityError) as failed, engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO schema_migrations (name, applied_at) VALUES (:n, :t)"),
            [{"n": "reader@example.org", "t": "2026-01-01"}] * 2,
        )
    assert "reader@example.org" not in str(failed.value)
