"""Fixtures of the web app's tests (loaded with ``pytest_plugins = ["tests.webfixtures"]``).

``app`` is the app for the test's settings; ``client`` calls it in-process (Starlette's
TestClient); ``live`` serves the same app with uvicorn on 127.0.0.1 for tests that need a socket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from newsletter.config import Settings
from newsletter.web.app import create_app
from tests.webkit import LiveServer, in_process


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
def live(app: Starlette) -> Iterator[LiveServer]:
    """``app`` behind a real uvicorn server on a free loopback port."""
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    """A browser-like client calling ``app`` in-process: keeps cookies, follows no redirect."""
    with in_process(app) as http:
        yield http
