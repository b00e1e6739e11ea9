"""Open the project's database: create the engine, apply migrations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from newsletter.errors import ConfigError
from newsletter.store.migrations import migrate


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # WAL lets the web app read while a send writes; busy_timeout makes concurrent writers wait.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_database(url: str) -> sa.Engine:
    """Return an engine for ``url`` with the schema migrated to the latest version."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as err:
        raise ConfigError(f"database: cannot use {url!r}: {err}") from err
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        migrate(engine)
    except sa.exc.OperationalError as err:
        raise ConfigError(f"database: cannot open {url!r}: {err.orig}") from err
    return engine
