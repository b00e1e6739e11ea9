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


def _shown(url: str) -> str:
    """The URL for a message, its password hidden (it may come from NEWSLETTER_DATABASE_URL)."""
    try:
        return repr(sa.make_url(url).render_as_string(hide_password=True))
    except (sa.exc.ArgumentError, ValueError):
        return repr(url)


def open_database(url: str) -> sa.Engine:
    """Return an engine for ``url`` with the schema migrated to the latest version."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as err:
        raise ConfigError(f"database: cannot use {_shown(url)}: {err}") from err
    except ImportError as err:  # the URL names a database whose Python driver is not installed
        raise ConfigError(
            f"database: {_shown(url)} needs the Python driver {err.name or 'for it'!r}, "
            f"which is not installed (pip install it into this environment)"
        ) from err
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        migrate(engine)
    except sa.exc.OperationalError as err:
        raise ConfigError(f"database: cannot open {_shown(url)}: {err.orig}") from err
    return engine
