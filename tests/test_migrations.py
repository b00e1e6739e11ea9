"""Named migrations: applied once, recorded, and safe when processes open a new database at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import sqlalchemy as sa

from newsletter.store.engine import open_database
from newsletter.store.migrations import MIGRATIONS, migrate


def _open(url: str) -> str:
    open_database(url)
    return "ok"


def test_migrations_applied_once_and_recorded(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'a.db'}")
    assert migrate(engine) == []  # nothing left to apply the second time
    with engine.connect() as conn:
        names = list(conn.scalars(sa.text("SELECT name FROM schema_migrations ORDER BY name")))
    assert names == [name for name, _ in MIGRATIONS]
    assert {"subscribers", "deliveries", "sends"} <= set(sa.inspect(engine).get_table_names())


def test_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        for round_ in range(3):
            url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
            assert pool.map(_open, [url] * 4, chunksize=1) == ["ok"] * 4


def test_missing_driver_or_bad_url_is_a_config_error_without_the_password() -> None:
    import pytest

    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match="needs the Python driver") as info:
        open_database("mysql://editor:s3cret-pw@127.0.0.1/newsletter")
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="database: cannot use"):
        open_database("nosuchdialect://x/y")
