"""The one translation of SQLAlchemy's (and the drivers') exceptions into ``StoreError``\\ s.

A database that cannot be used (a damaged file, a folder without permission, a server that is
down) reaches the user as one line naming the database, with its password hidden, and what to
do about it. ``install`` makes an engine raise these itself, at whichever statement meets the
failure; ``map_store_errors`` wraps a block (opening the database) and turns any other
SQLAlchemy error into a ``StoreError`` as well; ``store_error`` is the table both use.

Errors the code handles on purpose pass through unchanged from the engine: constraint
violations (``IntegrityError``), a busy database, "table already exists" in a migration race.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from newsletter.errors import CorruptDatabaseError, DatabaseUnavailableError, StoreError

# SQLite's primary result codes (https://sqlite.org/rescode.html), from ``sqlite_errorcode``.
_SQLITE_CORRUPT = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}
_SQLITE_UNAVAILABLE = {
    3: "SQLITE_PERM",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    23: "SQLITE_AUTH",
}


# Everything a database call can raise: for code outside ``store/`` that must catch any of them
# (a best-effort clean-up) without importing SQLAlchemy itself.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError, StoreError)


def shown_url(url: str | sa.URL) -> str:
    """The URL for a message, its password hidden (it may come from NEWSLETTER_DATABASE_URL)."""
    try:
        return repr(sa.make_url(url).render_as_string(hide_password=True))
    except (sa.exc.ArgumentError, ValueError):
        return repr(str(url))


def _named(url: str | sa.URL | None) -> str:
    return "the database" if url is None else f"database {shown_url(url)}"


def _one_line(err: BaseException | None) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _sqlite_code(orig: BaseException | None) -> int | None:
    code = getattr(orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def store_error(
    err: BaseException, url: str | sa.URL | None, *, connecting: bool = False
) -> StoreError | None:
    """The ``StoreError`` for a database failure, or None if ``err`` is not one.

    ``err`` is a ``sqlalchemy.exc.DBAPIError`` (its ``orig`` the driver's exception) or the
    driver's exception itself; ``connecting`` says it came while opening a connection, where
    any driver error means the database cannot be reached.
    """
    orig = err.orig if isinstance(err, sa.exc.DBAPIError) else err
    shown = _named(url)
    reason = _one_line(orig)
    code = _sqlite_code(orig)
    if code in _SQLITE_CORRUPT:
        return CorruptDatabaseError(
            f"{shown}: the file is damaged or is not a SQLite database ({reason}); "
            "restore it from a backup, or move it away to start with an empty list"
        )
    if code in _SQLITE_UNAVAILABLE:
        return DatabaseUnavailableError(
            f"{shown}: cannot open or write it ({reason}); check that its folder "
            "exists and that this user may read and write both the file and the folder"
        )
    if code is None and (
        connecting or (isinstance(err, sa.exc.DBAPIError) and err.connection_invalidated)
    ):
        return DatabaseUnavailableError(
            f"{shown}: cannot connect ({reason}); check that the server is running "
            "and the URL's host, port, user name and password (NEWSLETTER_DATABASE_URL)"
        )
    return None


def any_store_error(err: sa.exc.SQLAlchemyError, url: str | sa.URL | None) -> StoreError:
    """Like ``store_error``, but every SQLAlchemy error becomes one (a plain ``StoreError``)."""
    mapped = store_error(err, url)
    if mapped is not None:
        return mapped
    orig = err.orig if isinstance(err, sa.exc.DBAPIError) else err
    return StoreError(f"{_named(url)}: {_one_line(orig)}")


@contextmanager
def map_store_errors(url: str | sa.URL) -> Iterator[None]:
    """Turn any SQLAlchemy error raised in the block into a ``StoreError`` naming ``url``."""
    try:
        yield
    except sa.exc.SQLAlchemyError as err:
        raise any_store_error(err, url) from err


def _on_error(context: sa.engine.ExceptionContext) -> None:
    engine = context.engine
    if engine is None:
        return
    mapped = store_error(
        context.original_exception, engine.url, connecting=context.connection is None
    )
    if mapped is not None:
        # Raising here replaces SQLAlchemy's exception, after it has cleaned up the connection;
        # SQLAlchemy chains it to the driver's exception.
        raise mapped from context.original_exception


def install(engine: sa.Engine) -> None:
    """Make ``engine`` raise ``StoreError``\\ s for databases that cannot be used (see module doc)."""
    sa.event.listen(engine, "handle_error", _on_error)
