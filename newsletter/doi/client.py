"""Crossref and Unpaywall over HTTP: a polite User-Agent, timeouts, bounded retries.

Crossref: ``GET {NEWSLETTER_CROSSREF_URL}/works/{doi}`` (default ``https://api.crossref.org``),
with ``mailto`` in the User-Agent so requests go to its "polite pool". Unpaywall: ``GET
{NEWSLETTER_UNPAYWALL_URL}/v2/{doi}?email=…`` (default ``https://api.unpaywall.org``), the email
being the sender's address. Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from newsletter import __version__
from newsletter.doi.faults import NotFound, Unreachable
from newsletter.doi.record import Record, from_crossref, with_unpaywall

__all__ = ["Client", "NotFound", "Unreachable"]

CROSSREF_URL = "https://api.crossref.org"
UNPAYWALL_URL = "https://api.unpaywall.org"
TIMEOUT = 10.0  # seconds per request
ATTEMPTS = 3  # a 5xx, 429 or a timeout is tried again, at most this many times in all
BACKOFF = 0.5  # seconds before the second attempt, doubled after each


@dataclass(frozen=True)
class Client:
    """Where and how to ask; ``from_env`` reads the base URLs from the environment."""

    mailto: str
    crossref_url: str = CROSSREF_URL
    unpaywall_url: str = UNPAYWALL_URL
    timeout: float = TIMEOUT
    attempts: int = ATTEMPTS
    backoff: float = BACKOFF

    @classmethod
    def from_env(cls, mailto: str, env: Mapping[str, str] | None = None, **options: Any) -> Client:
        env = os.environ if env is None else env
        return cls(
            mailto=mailto,
            crossref_url=(env.get("NEWSLETTER_CROSSREF_URL") or CROSSREF_URL).rstrip("/"),
            unpaywall_url=(env.get("NEWSLETTER_UNPAYWALL_URL") or UNPAYWALL_URL).rstrip("/"),
            **options,
        )

    @property
    def user_agent(self) -> str:
        return (
            f"newsletter/{__version__} (https://github.com/newsletter/newsletter; "
            f"mailto:{self.mailto})"
        )

    def crossref(self, doi: str) -> dict[str, Any]:
        """Crossref's work ``message`` for ``doi``; NotFound or Unreachable."""
        answer = self._get(f"{self.crossref_url}/works/{quote(doi, safe='')}")
        message = answer.get("message")
        if not isinstance(message, dict):
            raise Unreachable(f"Crossref answered without a work for {doi}")
        return message

    def unpaywall(self, doi: str) -> dict[str, Any] | None:
        """Unpaywall's answer for ``doi``; None when it does not know the DOI."""
        query = urlencode({"email": self.mailto})
        try:
            return self._get(f"{self.unpaywall_url}/v2/{quote(doi, safe='/')}?{query}")
        except NotFound:
            return None

    def record(self, doi: str, *, now: datetime | None = None) -> Record:
        """The normalised record: Crossref's metadata, Unpaywall's free copy if it answers."""
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = from_crossref(self.crossref(doi), fetched_at=stamp)
        try:
            answer = self.unpaywall(doi)
        except Unreachable:
            answer = None  # a free copy is a nicety: the metadata stands without it
        return with_unpaywall(record, answer)

    def _get(self, url: str) -> dict[str, Any]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) bases only
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    data = json.loads(response.read().decode("utf-8"))
                    if not isinstance(data, dict):
                        raise Unreachable(f"{url}: not a JSON object")
                    return data
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    raise NotFound(url) from err
                problem = f"HTTP {err.code}"
                if err.code != 429 and err.code < 500:
                    raise Unreachable(f"{url}: {problem}") from err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                problem = str(reason) or type(reason).__name__
                if isinstance(reason, ConnectionRefusedError | socket.gaierror):
                    raise Unreachable(
                        f"{url}: {problem}"
                    ) from err  # no network: retrying won't help
            except ValueError as err:  # not JSON
                raise Unreachable(f"{url}: the answer is not JSON ({err})") from err
        raise Unreachable(f"{url}: {problem} ({self.attempts} attempts)")
