"""The same list and send on PostgreSQL: a configuration change, not a rewrite.

The whole CLI on a database of the session's throwaway PostgreSQL server (``tests/peers/postgres.py``);
the store, ledger, lease and claim tests run on both databases through the ``database_url`` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from tests.peers.postgres import PostgresServer


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


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
    assert report["counts"] == {
        "pending": 0,
        "sent": 6,
        "failed": 0,
        "unconfirmed": 0,
        "skipped": 0,
    }
    delivered = list((project / "outbox" / "new").iterdir())
    assert len(delivered) == 6
    assert not any("late.comer" in path.read_text(encoding="utf-8").lower() for path in delivered)
