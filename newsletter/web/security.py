"""Protections shared by every route: CSRF tokens, security headers, body limits, per-IP rate limits.

CSRF is a signed double submit: a random nonce lives in an HttpOnly, SameSite=Strict cookie and
the form carries ``issued.HMAC(key, form | nonce | issued)``; a forged form from another site has
neither the cookie's nonce nor the key. Nothing here keeps more than a bounded amount of memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 2 * 60 * 60  # seconds a form may stay open before it must be reloaded

# No JavaScript anywhere; inline styles only (the archived email's HTML is full of them).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # tokens live in paths: never leak them to other sites
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"


class CsrfError(Exception):
    """A form arrived without a valid CSRF token (expired, forged, or cookies off)."""


class CsrfProtect:
    """Makes and checks the per-form CSRF tokens of the signed double-submit scheme."""

    def __init__(self, key: bytes, max_age: int = CSRF_MAX_AGE) -> None:
        self._key = hmac.new(key, b"newsletter csrf v1", hashlib.sha256).digest()
        self.max_age = max_age

    def _mac(self, form: str, nonce: str, issued: int) -> str:
        text = f"{form}|{nonce}|{issued}".encode()
        digest = hmac.new(self._key, text, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def nonce_for(self, request: Request) -> tuple[str, bool]:
        """The browser's nonce from its cookie, or a new one (True: the cookie must be set)."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if (
            16 <= len(nonce) <= 64
            and nonce.isascii()
            and nonce.replace("-", "").replace("_", "").isalnum()
        ):
            return nonce, False
        return secrets.token_urlsafe(24), True

    def token(self, form: str, nonce: str, now: float | None = None) -> str:
        """The hidden-field value for ``form`` in the browser holding ``nonce``."""
        issued = int(now if now is not None else time.time())
        return f"{issued}.{self._mac(form, nonce, issued)}"

    def check(self, form: str, request: Request, submitted: str, now: float | None = None) -> None:
        """Raise ``CsrfError`` unless ``submitted`` was made for this form and this browser."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        issued_text, _, mac = (submitted or "").partition(".")
        if (
            not nonce
            or not (issued_text.isascii() and issued_text.isdigit())
            or len(issued_text) > 12
            or not mac
        ):
            raise CsrfError("missing form token or cookie")
        expected = self._mac(form, nonce, int(issued_text))
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace")):
            raise CsrfError("form token does not match")
        age = (now if now is not None else time.time()) - int(issued_text)
        if not -60 <= age <= self.max_age:
            raise CsrfError("form token expired")

    def set_cookie(self, response: Response, nonce: str, request: Request) -> None:
        """Give the browser its nonce: HttpOnly, SameSite=Strict, Secure over HTTPS."""
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=self.max_age * 4,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` requests per ``window`` seconds from one IP address."""

    limit: int
    window: float


class RateLimiter:
    """A sliding-window counter per IP, remembering at most ``max_clients`` addresses (LRU)."""

    def __init__(self, rule: RateLimit, max_clients: int = 10_000) -> None:
        self.rule = rule
        self.max_clients = max_clients
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, client: str, now: float | None = None) -> float | None:
        """Count one request; None when allowed, else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.pop(client, None) or deque(maxlen=self.rule.limit)
            self._hits[client] = hits  # most recently seen last
            while hits and now - hits[0] >= self.rule.window:
                hits.popleft()
            if len(hits) >= self.rule.limit:
                return max(1.0, self.rule.window - (now - hits[0]))
            hits.append(now)
            while len(self._hits) > self.max_clients:
                self._hits.popitem(last=False)
        return None

    def __len__(self) -> int:
        return len(self._hits)


def client_ip(request: Request) -> str:
    """The caller's address; behind a proxy uvicorn's --forwarded-allow-ips has already set it."""
    return request.client.host if request.client else "unknown"


def rate_key(ip: str) -> str:
    """Whose budget a request spends: an IPv4 address, or the /64 of an IPv6 one (one customer's LAN).

    IPv4-mapped IPv6 (``::ffff:192.0.2.1``) counts as the IPv4 address it carries, not as the
    single /64 that would hold every IPv4 client.
    """
    try:
        address = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """The request body is bigger than the route accepts."""


class BodyLimit:
    """ASGI middleware: refuse bodies above ``limit`` bytes (webhooks get ``webhook_limit``)."""

    def __init__(
        self, app: ASGIApp, limit: int = 64 * 1024, webhook_limit: int = 8 * 1024 * 1024
    ) -> None:
        self.app = app
        self.limit = limit
        self.webhook_limit = webhook_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.webhook_limit if scope["path"].startswith("/webhooks/") else self.limit
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        too_large = not declared.isdigit() or len(declared) > 12 or int(declared) > limit
        received = 0

        async def counted() -> Message:
            # Raised while the route reads its body, so the app's error handler answers 413.
            nonlocal received
            if too_large:
                raise BodyTooLarge(f"more than {limit} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"more than {limit} bytes")
            return message

        await self.app(scope, counted, send)


_TOKEN_PATH_RE = re.compile(r"/(unsubscribe|confirm|preferences)/[^/\s\"'?#<>]+")
access_log = logging.getLogger("newsletter.web.access")


def redact_path(path: str) -> str:
    """The text without link tokens: a token in a log would let its reader unsubscribe someone."""
    return _TOKEN_PATH_RE.sub(r"/\1/…", path)


class RedactTokens(logging.Filter):
    """A handler filter: every line, its arguments, traceback and stack included, loses its link tokens."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed logging call: the handler reports it as usual
            return True
        record.msg, record.args = redact_path(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_path(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_path(record.stack_info)
        return True


class AccessLog:
    """ASGI middleware: one log line per request (client, method, path without tokens, status, time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s "%s %s" %d %.0f ms',
                client[0],
                scope["method"],
                redact_path(scope["path"]),
                status,
                (time.monotonic() - started) * 1000,
            )
