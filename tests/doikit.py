"""Local stand-ins for Crossref (``/works/{doi}``) and Unpaywall (``/v2/{doi}``) on 127.0.0.1.

The answers are shaped like the public APIs' documented JSON: Crossref wraps a work in
``{"status": "ok", "message-type": "work", "message": {…}}`` and answers an unknown DOI with a
plain-text 404 "Resource not found."; a retracted work lists the notice in ``updated-by`` (with
``source`` "publisher" or "retraction-watch"); Unpaywall answers ``{"doi", "is_oa",
"best_oa_location": {"url", "url_for_landing_page", "url_for_pdf", "host_type", "license",
"version"}, …}`` and an unknown DOI with a JSON 404. Special DOIs: ``SLOW`` answers after
``slow_seconds``, ``FLAKY`` fails with 503 ``flaky_failures`` times, ``DOWN`` always answers 503.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PELUSO = "10.1037/pst0000165"
RETRACTED = "10.9999/retracted.2019.1"
RETRACTION_NOTICE = "10.9999/retraction.2021.7"
CORRECTED = "10.9999/corrected.2020.2"
CORRECTION_NOTICE = "10.9999/correction.2021.3"
MISSING = "10.9999/does-not-exist"
SLOW = "10.9999/slow"
FLAKY = "10.9999/flaky"
DOWN = "10.9999/down"
MANY_AUTHORS = "10.9999/many.authors"
NO_ISSUE = "10.1016/j.cpr.2019.101810"
ONLINE_FIRST = "10.1002/cpp.2521"


def work(
    doi: str,
    title: str,
    authors: list[tuple[str, str]],
    journal: str,
    year: int,
    *,
    volume: str = "",
    issue: str = "",
    page: str = "",
    article_number: str = "",
    updated_by: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Crossref work message, with the fields the API documents (a subset of them)."""
    message: dict[str, Any] = {
        "DOI": doi,
        "type": "journal-article",
        "title": [title],
        "author": [
            {
                "given": given,
                "family": family,
                "sequence": "first" if n == 0 else "additional",
                "affiliation": [],
            }
            for n, (family, given) in enumerate(authors)
        ],
        "container-title": [journal],
        "short-container-title": [journal],
        "publisher": "Stand-in Press",
        "published": {"date-parts": [[year, 3, 1]]},
        "published-print": {"date-parts": [[year]]},
        "issued": {"date-parts": [[year, 3, 1]]},
        "URL": f"https://doi.org/{doi}",
        "is-referenced-by-count": 12,
        "reference-count": 40,
    }
    for key, value in (
        ("volume", volume),
        ("issue", issue),
        ("page", page),
        ("article-number", article_number),
    ):
        if value:
            message[key] = value
    if updated_by:
        message["updated-by"] = updated_by
    return message


def notice(kind: str, doi: str, date: tuple[int, int, int], source: str) -> dict[str, Any]:
    return {
        "DOI": doi,
        "type": kind,
        "label": kind.replace("_", " ").capitalize(),
        "source": source,
        "updated": {"date-parts": [list(date)], "timestamp": 0},
        "record-id": "12345",
    }


def default_works() -> dict[str, dict[str, Any]]:
    return {
        PELUSO: work(
            PELUSO,
            "Therapist and client emotional expression and psychotherapy outcomes: "
            "A meta-analysis.",
            [("Peluso", "Paul R."), ("Freund", "Rachel R.")],
            "Psychotherapy",
            2018,
            volume="55",
            issue="4",
            page="461-472",
        ),
        RETRACTED: work(
            RETRACTED,
            "A retracted trial of something",
            [("Fabricius", "Anna")],
            "Journal of Stand-ins",
            2019,
            volume="3",
            page="1-9",
            updated_by=[
                notice("retraction", RETRACTION_NOTICE, (2021, 5, 4), "publisher"),
                notice("retraction", RETRACTION_NOTICE, (2021, 5, 4), "retraction-watch"),
            ],
        ),
        CORRECTED: work(
            CORRECTED,
            "A corrected study of something else",
            [("Korr", "Ben")],
            "Journal of Stand-ins",
            2020,
            volume="4",
            article_number="e17",
            updated_by=[notice("correction", CORRECTION_NOTICE, (2021, 2, 9), "publisher")],
        ),
        MANY_AUTHORS: work(
            MANY_AUTHORS,
            "A consortium's trial with twenty-two authors",
            [(f"Author{n:02d}", f"Given{chr(64 + n)}.") for n in range(1, 23)],
            "Journal of Consortia",
            2022,
            volume="9",
            issue="1",
            page="1-20",
        ),
        NO_ISSUE: work(
            NO_ISSUE,
            "Treating treatment non-responders: A meta-analysis of randomized controlled "
            "psychotherapy trials",
            [
                ("Gloster", "Andrew T."),
                ("Rinner", "Marcia T. B."),
                ("Ioannou", "Myria"),
                ("Villanueva", "Jeanette"),
                ("Block", "Victoria J."),
                ("Ferrari", "Gaia"),
                ("Benoy", "Charles"),
                ("Bader", "Klaus"),
                ("Karekla", "Maria"),
            ],
            "Clinical Psychology Review",
            2020,
            volume="75",
            article_number="101810",
        ),
        ONLINE_FIRST: work(
            ONLINE_FIRST,
            "Videotherapy and therapeutic alliance in the age of COVID\u201019",
            [
                ("Simpson", "Susan"),
                ("Richardson", "Linda"),
                ("Pietrabissa", "Giada"),
                ("Castelnuovo", "Gianluca"),
                ("Reid", "Corinne"),
            ],
            "Clinical Psychology & Psychotherapy",
            2020,
        ),
        SLOW: work(SLOW, "A slow answer", [("Slow", "S.")], "Journal of Stand-ins", 2020),
        FLAKY: work(FLAKY, "A flaky answer", [("Flaky", "F.")], "Journal of Stand-ins", 2020),
    }


@dataclass
class StandIn:
    """Both services on one server: ``url`` for NEWSLETTER_CROSSREF_URL and _UNPAYWALL_URL."""

    works: dict[str, dict[str, Any]] = field(default_factory=default_works)
    free: dict[str, str] = field(
        default_factory=lambda: {PELUSO: "https://repository.example/peluso.pdf"}
    )
    slow_seconds: float = 3.0
    flaky_failures: int = 1
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # path, UA, query
    url: str = ""

    def _answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, str, str]:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.requests.append((parts.path, handler.headers.get("User-Agent", ""), query))
        if parts.path.startswith("/works/"):
            doi = unquote(parts.path.removeprefix("/works/")).lower()
            return self._crossref(doi)
        if parts.path.startswith("/v2/"):
            doi = unquote(parts.path.removeprefix("/v2/")).lower()
            if "email" not in query:
                return (
                    422,
                    "application/json",
                    json.dumps({"error": True, "message": "email required"}),
                )
            return self._unpaywall(doi)
        return 404, "text/plain", "Not found"

    def _crossref(self, doi: str) -> tuple[int, str, str]:
        if doi == DOWN:
            return 503, "text/plain", "Service Unavailable"
        if doi == SLOW:
            time.sleep(self.slow_seconds)
        if doi == FLAKY and self.flaky_failures > 0:
            self.flaky_failures -= 1
            return 503, "text/plain", "Service Unavailable"
        found = {k.lower(): v for k, v in self.works.items()}.get(doi)
        if found is None:
            return 404, "text/plain", "Resource not found."
        body = {
            "status": "ok",
            "message-type": "work",
            "message-version": "1.0.0",
            "message": found,
        }
        return 200, "application/json", json.dumps(body)

    def _unpaywall(self, doi: str) -> tuple[int, str, str]:
        known = {k.lower(): v for k, v in self.works.items()}
        if doi not in known:
            body = {
                "HTTP_status_code": 404,
                "error": True,
                "message": f"'{doi}' isn't in Unpaywall.",
            }
            return 404, "application/json", json.dumps(body)
        url = {k.lower(): v for k, v in self.free.items()}.get(doi)
        location = (
            {
                "url": url,
                "url_for_landing_page": url,
                "url_for_pdf": url,
                "host_type": "repository",
                "license": "cc-by",
                "version": "acceptedVersion",
                "is_best": True,
            }
            if url
            else None
        )
        body = {
            "doi": doi,
            "doi_url": f"https://doi.org/{doi}",
            "is_oa": url is not None,
            "oa_status": "green" if url else "closed",
            "best_oa_location": location,
            "oa_locations": [location] if location else [],
            "title": known[doi]["title"][0],
        }
        return 200, "application/json", json.dumps(body)


@contextmanager
def stand_in(service: StandIn | None = None) -> Iterator[StandIn]:
    """Serve ``service`` on a free loopback port for the block."""
    service = service or StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = service._answer(self)
            data = body.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens: "no network", answered at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
