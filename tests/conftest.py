"""Shared fixtures: a throwaway copy of this repository's newsletter project for each test."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from tests.dbkit import close_all
from tests.doikit import closed_port_url

pytest_plugins = ["tests.peers.fixtures", "tests.peers.postgres"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which golden files --update-golden rewrote (the tests themselves pass)."""
    from tests import goldenkit

    if goldenkit.rewritten:
        terminalreporter.section("golden files rewritten")
        for path in goldenkit.rewritten:
            terminalreporter.write_line(f"rewrote {goldenkit.shown(path)}")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --update-golden``: golden tests rewrite their files and pass."""
    return bool(request.config.getoption("--update-golden"))


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's project files (schedule.yaml, issues/, templates/, subscribers/)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "schedule.yaml", root / "schedule.yaml")
    for folder in ("issues", "templates", "subscribers"):
        if (REPO / folder).is_dir():
            shutil.copytree(
                REPO / folder,
                root / folder,
                ignore=shutil.ignore_patterns("*.db", "*.db-*", ".secret_key"),
            )
    return root


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NEWSLETTER_*/SENDGRID_* variables from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith(("NEWSLETTER_", "SENDGRID_")):
            monkeypatch.delenv(name)
    _no_doi_network(monkeypatch)


def _no_doi_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crossref and Unpaywall at a loopback port where nothing listens: tests never go online."""
    nowhere = closed_port_url()
    monkeypatch.setenv("NEWSLETTER_CROSSREF_URL", nowhere)
    monkeypatch.setenv("NEWSLETTER_UNPAYWALL_URL", nowhere)


@pytest.fixture(autouse=True)
def _offline_dois(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the internet for DOI look-ups (a stand-in overrides this)."""
    _no_doi_network(monkeypatch)


@pytest.fixture
def settings(project: Path, clean_env: None) -> Settings:
    return load_settings(project, env={})


@pytest.fixture
def db_settings(settings: Settings, database_url: str) -> Settings:
    """The project's settings on each kind of database (``database_url``: SQLite, PostgreSQL)."""
    return dataclasses.replace(settings, database_url=database_url, secret_key="k" * 32)


@pytest.fixture(autouse=True)
def _close_databases() -> Iterator[None]:
    """The databases a test opened through ``tests.dbkit.db`` are closed after it."""
    yield
    close_all()
