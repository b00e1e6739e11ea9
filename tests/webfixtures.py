"""Fixtures of the web app's tests (loaded with ``pytest_plugins = ["tests.webfixtures"]``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from newsletter.config import Settings
from tests.webkit import LiveServer, serving


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with serving(settings) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    """A browser-like client: keeps cookies, does not follow redirects."""
    with httpx.Client(base_url=live.url, timeout=10) as http:
        yield http
