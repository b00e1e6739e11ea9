"""Named migrations: applied once, recorded, safe when processes open a new database at once, and
ending in exactly the schema ``store/schema.py`` describes, from scratch or from version 0.1.0.
"""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.errors import ConfigError
from newsletter.store import schema
from newsletter.store.engine import open_database
from newsletter.store.migrations import MIGRATIONS, m0001_initial, migrate
from tests.peers.postgres import PostgresServer
from tests.schemashape import shape

V0_1_0 = Path(__file__).parent / "data" / "databases" / "v0.1.0.sqlite"


def _open(url: str) -> str:
    open_database(url)
    return "ok"


def _declared(url: str) -> sa.Engine:
    """A database built straight from ``store/schema.py``: what migrations must arrive at."""
    engine = sa.create_engine(url)
    schema.metadata.create_all(engine)
    return engine


def test_migrations_applied_once_and_recorded(database_url: str) -> None:
    engine = open_database(database_url)
    assert migrate(engine) == []  # nothing left to apply the second time
    with engine.connect() as conn:
        names = list(conn.scalars(sa.text("SELECT name FROM schema_migrations ORDER BY name")))
    assert names == [name for name, _ in MIGRATIONS]
    engine.dispose()


def test_a_fresh_database_is_exactly_the_declared_schema(database_url: str, tmp_path: Path) -> None:
    migrated = open_database(database_url)
    other = (
        f"sqlite:///{tmp_path / 'declared.db'}"
        if database_url.startswith("sqlite")
        else _fresh_postgres(database_url)
    )
    declared = _declared(other)
    assert shape(migrated) == shape(declared)
    migrated.dispose()
    declared.dispose()


def _fresh_postgres(url: str) -> str:
    """Another empty database on the same PostgreSQL server as ``url``."""
    import psycopg

    made = sa.make_url(url)
    name = f"{made.database}_declared"
    with psycopg.connect(
        f"host={made.host} port={made.port} user={made.username} dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return made.set(database=name).render_as_string(hide_password=False)


def test_a_0_1_0_sqlite_database_upgrades_to_exactly_the_declared_schema(tmp_path: Path) -> None:
    # tests/data/databases/v0.1.0.sqlite was made by version 0.1.0 (commit 7d807a6): the sample
    # list imported, one reader added, one unsubscribed, 2021-01 sent through the outbox.
    copy = tmp_path / "old.db"
    shutil.copy(V0_1_0, copy)
    upgraded = open_database(f"sqlite:///{copy}")
    assert shape(upgraded) == shape(_declared(f"sqlite:///{tmp_path / 'declared.db'}"))
    with upgraded.connect() as conn:  # nothing lost on the way
        assert conn.scalar(sa.text("SELECT count(*) FROM subscribers")) == 7
        assert conn.scalar(sa.text("SELECT count(*) FROM deliveries WHERE status='sent'")) == 6
        assert conn.scalar(sa.text("SELECT status FROM sends WHERE issue='2021-01'")) == "completed"


def test_a_0_1_0_postgresql_database_upgrades_to_exactly_the_declared_schema(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    old = sa.create_engine(url)
    m0001_initial.schema_migrations.create(old)
    with old.begin() as conn:  # version 0.1.0: the first migration only, and a row in it
        m0001_initial.apply(conn)
        conn.execute(sa.text("INSERT INTO schema_migrations VALUES ('0001_initial', now())"))
        conn.execute(
            sa.text(
                "INSERT INTO sends (issue, subject, transport, status, started_at, triggered_by)"
                " VALUES ('2021-01', 'S', 'outbox', 'completed', now(), 'cli')"
            )
        )
    old.dispose()
    upgraded = open_database(url)
    assert shape(upgraded) == shape(_declared(postgres_server.new_database()))
    with upgraded.connect() as conn:
        assert conn.scalar(sa.text("SELECT status FROM sends WHERE issue='2021-01'")) == "completed"


def test_migrations_never_build_tables_from_the_live_schema() -> None:
    # Building the first tables from store/schema.py is what broke every fresh database once a
    # column was added with its own ALTER migration ("duplicate column").
    folder = Path(m0001_initial.__file__).parent
    for module in folder.glob("m*.py"):
        source = module.read_text(encoding="utf-8")
        assert "store.schema" not in source and "import schema" not in source, module.name


def test_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        for round_ in range(3):
            url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
            assert pool.map(_open, [url] * 4, chunksize=1) == ["ok"] * 4


def test_missing_driver_or_bad_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match="needs the Python driver") as info:
        open_database("mysql://editor:s3cret-pw@127.0.0.1/newsletter")
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="database: cannot use"):
        open_database("nosuchdialect://x/y")
