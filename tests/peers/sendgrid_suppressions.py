"""SendGrid's four suppression lists for the stand-in (``SendGridServer.add_route``).

Paged with ``limit``/``offset`` and checked against the official API description in
``tests/data/sendgrid-oai/twilio-sendgrid-oai/spec/json/tsg_suppressions_v3.json``: a query outside
the spec's bounds is answered 400, and every page served is validated against the spec's
response schema, so the stand-in cannot drift from what SendGrid documents.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema

from tests.peers.sendgrid_server import (
    SENDGRID_OAI,
    Answer,
    PeerRequest,
    SendGridServer,
    read_spec_file,
)

SPEC = SENDGRID_OAI / "twilio-sendgrid-oai" / "spec" / "json" / "tsg_suppressions_v3.json"
LISTS = ("unsubscribes", "bounces", "spam_reports", "invalid_emails")
DEFAULT_PAGE = 500  # the spec leaves the default page size open; this is its maximum


@cache
def spec() -> dict[str, Any]:
    return json.loads(read_spec_file(SPEC))  # type: ignore[no-any-return]


def _resolve(node: Any) -> Any:
    """The node with every ``$ref`` into ``#/components`` inlined."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec()
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target)
        return {key: _resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    return node


@cache
def operation(name: str) -> dict[str, Any]:
    """The spec's GET operation of one suppression list, references resolved."""
    return _resolve(spec()["paths"][f"/v3/suppression/{name}"]["get"])  # type: ignore[no-any-return]


def query_parameter(name: str, parameter: str) -> dict[str, Any]:
    for item in operation(name)["parameters"]:
        if item["name"] == parameter and item["in"] == "query":
            return item  # type: ignore[no-any-return]
    raise KeyError(parameter)


def response_schema(name: str) -> dict[str, Any]:
    return operation(name)["responses"]["200"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


@dataclass
class SuppressionLists:
    """The records of each list, served page by page; ``queries`` records what was asked."""

    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in LISTS}
    )
    queries: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, email: str, created: int = 1_763_000_000, **extra: Any) -> None:
        """One record, shaped as the spec's example for that list."""
        record: dict[str, Any] = {"created": created, "email": email}
        if name == "bounces":
            record.update(reason="550 5.1.1 The email account does not exist", status="5.1.1")
        elif name == "spam_reports":
            record.update(ip="192.0.2.10")
        elif name == "invalid_emails":
            record.update(reason="Mail domain mentioned in email address is unknown")
        record.update(extra)
        self.records[name].append(record)

    def install(self, server: SendGridServer) -> SuppressionLists:
        """Serve the four lists on ``server``; the spec is read now, so a missing file fails here."""
        for name in LISTS:
            operation(name)
            server.add_route("GET", f"/v3/suppression/{name}", self._route(name))
        return self

    def _route(self, name: str) -> Any:
        def handle(request: PeerRequest) -> Answer:
            if request.path != f"/v3/suppression/{name}":
                return Answer(404, {"errors": [{"message": "not found", "field": None}]})
            with self._lock:
                self.queries.append((name, request.query))
            try:
                limit = _integer(request, name, "limit", DEFAULT_PAGE)
                offset = _integer(request, name, "offset", 0)
            except ValueError as err:
                return Answer(400, {"errors": [{"message": str(err), "field": None}]})
            page = self.records[name][offset : offset + limit]
            jsonschema.validate(page, response_schema(name))
            return Answer(200, page)

        return handle


def _integer(request: PeerRequest, name: str, parameter: str, default: int) -> int:
    """A query parameter, checked against the spec's type and bounds."""
    values = request.query.get(parameter)
    if not values:
        return default
    schema = query_parameter(name, parameter)["schema"]
    try:
        value = int(values[-1])
    except ValueError as err:
        raise ValueError(f"{parameter} must be an integer") from err
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{parameter} must be between {low} and {high}")
    return value
