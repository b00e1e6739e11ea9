"""A SendGrid v3 stand-in for tests: a real HTTP server on 127.0.0.1 that validates like SendGrid.

Every ``POST /v3/mail/send`` body is checked against SendGrid's official JSON Schema
(``tests/data/sendgrid-oai/mail_send_request_body.schema.json``, a copy kept in the repository;
see its PROVENANCE.md) and its documented limits; valid
requests get 202 + ``X-Message-Id`` and are recorded, invalid ones get 400 with SendGrid's
``{"errors": [{"message", "field"}]}``. Faults (429, 5xx, slow answers, dropped connections) are
queued with ``inject`` and served to the next requests, one each. Other endpoints (suppression
lists …) are added with ``add_route``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema

REPO = Path(__file__).resolve().parents[2]
SENDGRID_OAI = REPO / "tests" / "data" / "sendgrid-oai"  # SendGrid's official spec files, copied
SCHEMA_PATH = SENDGRID_OAI / "mail_send_request_body.schema.json"

MAX_PAYLOAD_BYTES = 20 * 1000 * 1000  # SendGrid: the whole message at most 20 MB
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000  # to + cc + bcc over the whole request
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization
MAX_CUSTOM_ARGS_BYTES = 10_000
RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}
DEFAULT_API_KEY = "SG.stand-in-test-key.not-a-real-secret"


class MissingSpecError(RuntimeError):
    """A SendGrid spec file the stand-in validates against is not where the tests keep it."""


def read_spec_file(path: Path) -> str:
    """The text of one copied spec file, or an error naming it (not a dropped connection later)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingSpecError(
            f"the SendGrid stand-in cannot start: {path} is missing; it is part of the "
            f"repository (see {SENDGRID_OAI / 'PROVENANCE.md'}), so restore it with git"
        ) from None


def load_schema() -> dict[str, Any]:
    """The official schema, with the one known spec error fixed in memory.

    The spec types top-level ``custom_args`` as a string although the live API takes an object
    (of strings), like the personalization-level field; a string there is refused by SendGrid.
    """
    schema: dict[str, Any] = json.loads(read_spec_file(SCHEMA_PATH))
    node = schema["properties"]["custom_args"]
    assert node.get("type") == "string", "the spec was fixed upstream: drop this patch"
    personal = schema["properties"]["personalizations"]["items"]["properties"]["custom_args"]
    schema["properties"]["custom_args"] = {
        **copy.deepcopy(personal),
        "description": node["description"],
    }
    return schema


_VALIDATOR: jsonschema.Draft202012Validator | None = None


def validator() -> jsonschema.Draft202012Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = load_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        _VALIDATOR = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    return _VALIDATOR


def _error(message: str, field: str | None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def schema_errors(body: Any) -> list[dict[str, Any]]:
    """Violations of the official JSON Schema, as SendGrid-style errors."""
    found = []
    for err in validator().iter_errors(body):
        where = ".".join(str(p) for p in err.absolute_path) or None
        found.append(_error(err.message, where))
    return found


def limit_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """SendGrid's documented rules that the schema does not express."""
    errors: list[dict[str, Any]] = []
    personalizations = body.get("personalizations") or []
    if not personalizations:
        errors.append(_error("You must have at least one personalization.", "personalizations"))
    errors += _recipient_errors(personalizations)
    errors += _content_errors(body)
    if "subject" not in body and "template_id" not in body:
        for i, p in enumerate(personalizations):
            if isinstance(p, dict) and "subject" not in p:
                errors.append(_error("The subject is required.", f"personalizations.{i}.subject"))
    errors += _header_errors(body.get("headers"), "headers")
    top_args = body.get("custom_args") or {}
    errors += _string_values(top_args, "custom_args")
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            continue
        errors += _header_errors(p.get("headers"), f"personalizations.{i}.headers")
        subs = p.get("substitutions") or {}
        if _json_size(subs) > MAX_SUBSTITUTION_BYTES:
            errors.append(
                _error(
                    "The total size of your substitutions may not exceed 10,000 bytes per personalization object.",
                    f"personalizations.{i}.substitutions",
                )
            )
        args = p.get("custom_args") or {}
        errors += _string_values(args, f"personalizations.{i}.custom_args")
        if (
            isinstance(args, dict)
            and isinstance(top_args, dict)
            and _json_size({**top_args, **args}) > MAX_CUSTOM_ARGS_BYTES
        ):
            errors.append(
                _error(
                    "The total size of custom arguments may not exceed 10,000 bytes.",
                    f"personalizations.{i}.custom_args",
                )
            )
    return errors


def _recipient_errors(personalizations: list[Any]) -> list[dict[str, Any]]:
    errors = []
    seen: set[str] = set()
    total = 0
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            continue
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(p.get(kind) or []):
                total += 1
                email = str(address.get("email", "")).lower() if isinstance(address, dict) else ""
                if email in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique "
                            f"between to, cc, and bcc. We found the first duplicate instance of [{email}].",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
                seen.add(email)
    if total > MAX_RECIPIENTS:
        errors.append(
            _error(
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "personalizations",
            )
        )
    return errors


def _content_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body.get("content")
    if not content:
        if "template_id" in body:
            return []
        return [
            _error(
                "Unless a valid template_id is provided, the content parameter is required.",
                "content",
            )
        ]
    errors = []
    types = [c.get("type") if isinstance(c, dict) else None for c in content]
    for i, item in enumerate(content):
        if isinstance(item, dict) and not (isinstance(item.get("value"), str) and item["value"]):
            errors.append(
                _error(
                    "The content value must be a string at least one character in length.",
                    f"content.{i}.value",
                )
            )
    expected = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected)] != expected:
        errors.append(
            _error(
                "If present, text/plain and text/html may only be provided in order, followed by any other content.",
                "content",
            )
        )
    return errors


def _header_errors(headers: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(headers, dict):
        return []
    errors = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(
                _error(f"The header {name} is reserved and may not be set.", f"{where}.{name}")
            )
        if not isinstance(value, str):
            errors.append(_error("Header values must be strings.", f"{where}.{name}"))
        elif "\r" in value or "\n" in value:
            errors.append(_error("Header values may not contain line breaks.", f"{where}.{name}"))
    return errors


def _string_values(args: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(args, dict):
        return []
    return [
        _error("Custom arguments must be strings.", f"{where}.{key}")
        for key, value in args.items()
        if not isinstance(value, str)
    ]


def mail_send_errors(body: Any) -> list[dict[str, Any]]:
    """Everything SendGrid would refuse in a Mail Send body (empty list: valid)."""
    errors = schema_errors(body)
    if isinstance(body, dict):
        errors += limit_errors(body)
    return errors


@dataclass
class Fault:
    """One scripted answer: a status (with headers/body), a delay, or a dropped connection."""

    status: int | None = None  # answer with this instead of handling the request
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0  # seconds to wait first; alone (no status): then drop, or answer if process
    drop: bool = False  # close the connection without any answer
    process: bool = False  # handle (and record) the request anyway: it "went out" despite the fault
    hold: threading.Event | None = None  # wait until the test sets it (at most 60 s) first


@dataclass
class PeerRequest:
    """What a route handler sees."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[PeerRequest], Answer]


@dataclass
class Seen:
    """One request as the server saw it (for assertions on retries)."""

    method: str
    path: str
    status: int | None  # None: dropped


class SendGridServer:
    """The stand-in; use as a context manager, then point ``SendGridSettings.host`` at ``url``."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        validate_every: int = 1,
        record: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency  # seconds every Mail Send request waits before its answer
        self.connections = 0  # TCP connections accepted (keep-alive: far fewer than requests)
        self.in_flight = 0  # Mail Send requests being handled now
        self.peak_in_flight = 0
        self.validate_every = validate_every  # 1: validate every request; n: one in n (benchmarks)
        self.record = record  # False: only count (benchmarks, so memory stays flat)
        self.accepted: list[dict[str, Any]] = []  # valid Mail Send bodies, in order
        self.message_ids: list[str] = []
        self.sandboxed: list[dict[str, Any]] = []
        self.rejected: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
        self.seen: list[Seen] = []
        self.accepted_count = 0
        self.recipient_count = 0
        self._faults: deque[Fault] = deque()
        self._routes: list[tuple[str, str, Route]] = []
        self._lock = threading.Lock()
        self._mail_sends = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------------------------

    def start(self) -> SendGridServer:
        """Listen on a free port; the schema is loaded first, so a missing file fails here."""
        validator()
        handler = type("Handler", (_Handler,), {"peer": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def inject(self, *faults: Fault) -> None:
        """Serve these answers to the next requests, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def faults_left(self) -> int:
        """Injected answers no request has taken yet (a request takes its fault before any delay)."""
        with self._lock:
            return len(self._faults)

    def add_route(self, method: str, path_prefix: str, handler: Route) -> None:
        """Answer ``method`` requests whose path starts with ``path_prefix`` (after auth, faults)."""
        self._routes.append((method.upper(), path_prefix, handler))

    # --- what was received -------------------------------------------------------------------

    def personalizations(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Every accepted (request body, personalization) pair."""
        for body in self.accepted:
            for p in body["personalizations"]:
                yield body, p

    def recipients(self) -> list[str]:
        return [p["to"][0]["email"] for _, p in self.personalizations()]

    # --- used by the handler -----------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _note(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, status))

    def _route(self, method: str, path: str) -> Route | None:
        for m, prefix, handler in self._routes:
            if m == method and path.startswith(prefix):
                return handler
        return None

    def _mail_send(self, body: Any) -> Answer:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._mail_send_now(body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _mail_send_now(self, body: Any) -> Answer:
        with self._lock:
            self._mail_sends += 1
            check = (self._mail_sends - 1) % max(1, self.validate_every) == 0
        errors = mail_send_errors(body) if check else limit_errors(body)
        if errors:
            with self._lock:
                self.rejected.append((body if isinstance(body, dict) else None, errors))
            return Answer(400, {"errors": errors})
        if body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable"):
            with self._lock:
                self.sandboxed.append(body)
            return Answer(200)
        message_id = secrets.token_urlsafe(16)
        with self._lock:
            self.accepted_count += 1
            self.recipient_count += len(body["personalizations"])
            if self.record:
                self.accepted.append(body)
                self.message_ids.append(message_id)
        return Answer(202, None, {"X-Message-Id": message_id})


class _Handler(BaseHTTPRequestHandler):
    peer: SendGridServer
    server_version = "SendGridStandIn/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive, as SendGrid's API

    def setup(self) -> None:
        super().setup()
        with self.peer._lock:
            self.peer.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            while length > 0:  # read it all, so the client sees the 413 rather than a reset
                length -= len(self.rfile.read(min(length, 1 << 20)) or b"x" * length)
            self._answer(
                method, parts.path, Answer(413, {"errors": [_error("content too large", None)]})
            )
            return
        raw = self.rfile.read(length) if length else b""
        fault = self.peer._next_fault()
        if fault is not None:
            if fault.hold is not None:
                fault.hold.wait(timeout=60)
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop or (fault.status is None and not fault.process):
                self._drop(method, parts.path, parts.query, raw, fault.process)
                return
            if fault.status is not None:
                if fault.process:
                    self._handle(method, parts.path, parts.query, raw, silent=True)
                body = fault.body if fault.body is not None else _default_body(fault.status)
                self._answer(method, parts.path, Answer(fault.status, body, fault.headers))
                return
        self._handle(method, parts.path, parts.query, raw)

    def _drop(self, method: str, path: str, query: str, raw: bytes, process: bool) -> None:
        """Close the connection without an answer (after handling the request, if ``process``)."""
        self.peer._note(method, path, None)
        if process:
            self._handle(method, path, query, raw, silent=True)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, method: str, path: str, query: str, raw: bytes, silent: bool = False) -> None:
        answer = self._dispatch(method, path, query, raw)
        if not silent:
            self._answer(method, path, answer)

    def _dispatch(self, method: str, path: str, query: str, raw: bytes) -> Answer:
        if self.headers.get("Authorization") != f"Bearer {self.peer.api_key}":
            return Answer(
                401,
                {
                    "errors": [
                        _error(
                            "The provided authorization grant is invalid, expired, or revoked", None
                        )
                    ]
                },
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return Answer(
                400, {"errors": [_error("Bad Request: the body is not valid JSON", None)]}
            )
        if method == "POST" and path == "/v3/mail/send":
            return self.peer._mail_send(body)
        route = self.peer._route(method, path)
        if route is None:
            return Answer(404, {"errors": [_error("not found", None)]})
        request = PeerRequest(method, path, parse_qs(query), dict(self.headers.items()), body)
        return route(request)

    def _answer(self, method: str, path: str, answer: Answer) -> None:
        self.peer._note(method, path, answer.status)
        data = b"" if answer.body is None else json.dumps(answer.body).encode("utf-8")
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timed out) before the answer came


def _default_body(status: int) -> dict[str, Any]:
    messages = {
        400: "invalid request",
        401: "authorization required",
        403: "access forbidden",
        413: "content too large",
        429: "too many requests",
        500: "internal server error",
        502: "bad gateway",
        501: "not implemented",
        503: "service unavailable",
        505: "HTTP version not supported",
    }
    return {"errors": [_error(messages.get(status, f"HTTP {status}"), None)]}
