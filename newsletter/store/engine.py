"""Open the project's database: create the engine, apply migrations.

A SQLite file is created owner-only (0600; its -wal and -shm files take the same mode from
SQLite) in a folder created owner-only (0700), whatever the umask: it holds readers' addresses.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import sqlalchemy as sa

from newsletter.errors import ConfigError, DatabaseUnavailableError
from newsletter.store import failures
from newsletter.store.failures import map_store_errors
from newsletter.store.migrations import migrate

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # WAL lets the web app read while a send writes; busy_timeout makes concurrent writers wait.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _shown(url: str) -> str:
    """The URL for a message, its password hidden (it may come from NEWSLETTER_DATABASE_URL)."""
    return failures.shown_url(url)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (its folder 0700 if missing); keep it if it exists."""
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        with contextlib.suppress(OSError):  # the umask may have taken bits off
            os.chmod(folder, FOLDER_MODE)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, FILE_MODE)  # exactly 0600, whatever the umask
    finally:
        os.close(descriptor)


def _prepare_sqlite_file(engine: sa.Engine, url: str) -> None:
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("uri"):
        return
    try:
        create_private_file(Path(database))
    except OSError as err:
        raise DatabaseUnavailableError(
            f"database {_shown(url)}: cannot create {database}: {err.strerror or err}; check "
            "that the path names a file in a folder this user may write"
        ) from err


def missing_sqlite_file(url: str) -> bool:
    """True when ``url`` names a SQLite file that does not exist yet (opening it would create it)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return False
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return False
    return not parsed.query.get("uri") and not Path(database).exists()


def open_database(url: str) -> sa.Engine:
    """Return an engine for ``url`` with the schema migrated to the latest version.

    A database that cannot be used raises a ``StoreError`` here, and so does any later statement
    that meets one (see ``newsletter.store.failures``).
    """
    try:
        # hide_parameters: an SQL error quoted in a log or traceback never carries an address.
        engine = sa.create_engine(url, hide_parameters=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as err:
        raise ConfigError(f"database: cannot use {_shown(url)}: {err}") from err
    except ImportError as err:  # the URL names a database whose Python driver is not installed
        raise ConfigError(
            f"database: {_shown(url)} needs the Python driver {err.name or 'for it'!r}, "
            f"which is not installed (pip install it into this environment)"
        ) from err
    failures.install(engine)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        _prepare_sqlite_file(engine, url)
    with map_store_errors(url):
        migrate(engine)
    return engine
