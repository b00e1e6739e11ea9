"""SendGrid's v3 Web API: the only module that imports ``sendgrid`` and translates its errors.

``SendGridAPI`` makes one call with bounded retries (429, 5xx, timeouts, refused connections:
exponential backoff with full jitter, honouring ``X-RateLimit-Reset``) and turns refusals, and the
5xx answers that no retry can change (501, 505 …), into ``PermanentDeliveryError``. ``SendGridTransport`` sends one Mail Send request per batch, one
personalization per recipient, and checks SendGrid's documented limits before it sends.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from itertools import chain
from operator import attrgetter, methodcaller
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import orjson
import python_http_client.exceptions
from sendgrid import SendGridAPIClient

from newsletter.delivery.base import BatchResults, DeliveryResult, Transport, not_built
from newsletter.delivery.sendgrid.settings import MAX_BATCH, SendGridSettings
from newsletter.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.mime import all_plain, check_address, check_header, list_headers
from newsletter.models import OutgoingMessage, Placeholder, Recipient

log = logging.getLogger(__name__)

ATTEMPTS = 6  # tries per request before giving up with TemporaryDeliveryError
BACKOFF_BASE = 1.0  # seconds; the n-th retry waits up to BACKOFF_BASE * 2**(n-1)
BACKOFF_CAP = 60.0  # seconds; no single wait is longer
TIMEOUT = 30.0  # seconds per HTTP request
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# SendGrid's documented limits for one Mail Send request.
MAX_PERSONALIZATIONS = MAX_BATCH
MAX_RECIPIENTS = 1000  # to + cc + bcc over the whole request
MAX_PAYLOAD_BYTES = 20 * 1000 * 1000
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization
MAX_CUSTOM_ARGS_BYTES = 10_000
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
# 5xx answers about the request itself, not an outage: the same request fails the same way again.
PERMANENT_5XX = {
    501: " (Not Implemented: the server does not support this request; check delivery.sendgrid.host)",
    505: " (HTTP Version Not Supported)",
    506: " (Variant Also Negotiates: the server is misconfigured)",
    508: " (Loop Detected)",
    510: " (Not Extended)",
    511: " (Network Authentication Required: a proxy between here and SendGrid wants a login)",
}
# Every tracking feature off in every request, whatever the account's defaults: click tracking
# would rewrite each link through SendGrid's domain (the unsubscribe link too), open tracking adds
# a pixel, Google Analytics adds utm_ parameters, and subscription tracking a second unsubscribe
# link next to our own List-Unsubscribe.
TRACKING_OFF: dict[str, dict[str, bool]] = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
    "ganalytics": {"enable": False},
    "subscription_tracking": {"enable": False},
}
# custom_args keys: SendGrid hands them back in event webhooks, so other modules read these.
CUSTOM_ARG_ISSUE = "newsletter_issue"
CUSTOM_ARG_SUBSCRIBER = "newsletter_subscriber_id"


def dumps(value: Any) -> bytes:
    """JSON as UTF-8 bytes (orjson: several times faster than ``json.dumps`` for Mail Send)."""
    return orjson.dumps(value)


class _NoSecretsInDebugLog(logging.Filter):
    """python_http_client logs request headers (the API key) and bodies (addresses) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("python_http_client.client").addFilter(_NoSecretsInDebugLog())


class Headers(dict[str, str]):
    """Response headers, looked up without regard to case (``X-Message-Id`` = ``x-message-id``)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for key, value in (items or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait  # what the server asked for (seconds from now), if anything


class SendGridAPI:
    """A small client for SendGrid's v3 API: JSON in, ``(JSON body, headers)`` out, retries built in."""

    def __init__(
        self,
        settings: SendGridSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not settings.api_key:
            raise ConfigError(
                "SENDGRID_API_KEY is not set: export the API key of your SendGrid account "
                "(Settings → API Keys, with Mail Send permission) to send with SendGrid"
            )
        self.host = settings.host
        self._api_key = settings.api_key
        self._client = SendGridAPIClient(api_key=settings.api_key, host=settings.host)
        self._sleep = sleep
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._base = backoff_base
        self._cap = backoff_cap
        self._clock = clock
        self._jitter = jitter
        # The library's own client says where (host, version) and with what headers (the key);
        # Mail Send goes over our keep-alive connections with exactly those.
        mail_send = self._client.client._("mail")._("send")
        self._kept = _Connections(mail_send._build_url(None), timeout)
        self._kept_headers = {
            **dict(self._client.client.request_headers),
            "Content-Type": JSON_CONTENT_TYPE,
        }

    def close(self) -> None:
        """Close the keep-alive connections (any thread's)."""
        self._kept.close_all()

    def mail_send(self, data: bytes) -> Headers:
        """POST a Mail Send body (JSON bytes) on this thread's keep-alive connection, retried."""
        _, headers = self.request("POST", "/v3/mail/send", data=data, kept=True)
        return headers

    def get(self, path: str, query: Mapping[str, str | int] | None = None) -> tuple[Any, Headers]:
        """GET ``path`` (e.g. ``/v3/suppression/bounces``) with optional query parameters."""
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> tuple[Any, Headers]:
        """POST a JSON ``body`` to ``path``."""
        return self.request("POST", path, body=body)

    def delete(self, path: str, body: Any = None) -> tuple[Any, Headers]:
        """DELETE ``path`` (an optional JSON body, as some suppression endpoints take)."""
        return self.request("DELETE", path, body=body)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        data: str | bytes | None = None,
        kept: bool = False,
    ) -> tuple[Any, Headers]:
        """One API call, retried on 429/5xx/timeouts; ``data`` is ``body`` already as JSON text.

        ``kept``: Mail Send on a keep-alive connection (one per thread), not a new one per call.
        """
        if data is None and body is not None:
            data = json.dumps(body)
        where = f"{method} {_display_path(path)}"
        for attempt in range(1, self._attempts + 1):
            try:
                if kept and data is not None:
                    raw = data if isinstance(data, bytes) else data.encode("utf-8")
                    return None, self._once_kept(method, path, raw)
                text = data.decode("utf-8") if isinstance(data, bytes) else data
                return self._once(method, path, query, text)
            except _Retry as err:
                wait = self._delay(attempt, err.wait)
                if attempt == self._attempts or wait > self._cap:
                    raise TemporaryDeliveryError(
                        self._redact(
                            f"SendGrid {where} failed {attempt} time(s), last: {err.reason}"
                        ),
                        retry_after=err.wait,
                    ) from err
                log.warning(
                    "SendGrid %s: %s; retry %d of %d in %.1f s",
                    where,
                    self._redact(err.reason),
                    attempt,
                    self._attempts - 1,
                    wait,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, asked: float | None) -> float:
        """Full jitter (0 … base·2ⁿ, capped), or what the server asked for when it said so."""
        if asked is not None and asked > 0:  # a reset already past (clock skew): back off anyway
            return asked
        return float(self._jitter() * min(self._cap, self._base * 2 ** (attempt - 1)))

    def _once(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None,
        data: str | None,
    ) -> tuple[Any, Headers]:
        endpoint = self._endpoint(path)
        call = getattr(endpoint, method.lower())
        headers = {"Content-Type": JSON_CONTENT_TYPE} if data is not None else None
        try:
            # A str body with a non-bare JSON content type is sent as-is (serialised once, by us).
            response = call(
                request_body=data,
                query_params=dict(query) if query else None,
                request_headers=headers,
                timeout=self._timeout,
            )
        except python_http_client.exceptions.HTTPError as err:
            raise self._translate_status(
                method,
                path,
                int(err.status_code),
                Headers(dict(err.headers.items()) if err.headers else {}),
                err.body,
                err.reason,
            ) from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise self._translate_network(err) from err
        return _decode(response.body), Headers(dict(response.headers.items()))

    def _once_kept(self, method: str, path: str, data: bytes) -> Headers:
        """One attempt on this thread's keep-alive connection; no debug strings are built."""
        conn = self._kept.get()
        try:
            conn.request(method, self._kept.path, body=data, headers=self._kept_headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._kept.drop()  # a new connection for the next attempt
            raise self._translate_network(err) from err
        if response.will_close:
            self._kept.drop()
        headers = Headers(dict(response.getheaders()))
        if response.status >= 400:
            raise self._translate_status(
                method, path, response.status, headers, body, response.reason
            )
        return headers

    def _endpoint(self, path: str) -> Any:
        segments = [s for s in path.split("?", 1)[0].split("/") if s]
        if segments[:1] == ["v3"]:
            segments = segments[1:]
        endpoint = self._client.client
        for segment in segments:
            endpoint = endpoint._(quote(segment, safe="@:+"))
        return endpoint

    def _translate_status(
        self,
        method: str,
        path: str,
        status: int,
        headers: Headers,
        body: bytes | None,
        reason: str | None,
    ) -> Exception:
        said = _error_messages(body)
        if status in (408, 429) or (status >= 500 and status not in PERMANENT_5XX):
            return _Retry(f"HTTP {status}{': ' + said if said else ''}", self._asked_wait(headers))
        hint = {
            401: " (check SENDGRID_API_KEY)",
            403: " (the API key lacks the permission, or the sender is not verified)",
            413: " (the request is too large)",
            **PERMANENT_5XX,
        }.get(status, "")
        return PermanentDeliveryError(
            self._redact(
                f"SendGrid refused {method} {_display_path(path)} with HTTP {status}{hint}: "
                f"{said or reason or 'no reason given'}"
            )
        )

    def _translate_network(self, err: BaseException) -> Exception:
        reason = getattr(err, "reason", None) or err
        if isinstance(reason, ssl.SSLCertVerificationError):
            return PermanentDeliveryError(
                f"SendGrid at {self.host}: the TLS certificate is not trusted: {reason}"
            )
        if isinstance(reason, (TimeoutError,)) or "timed out" in str(reason):
            return _Retry(f"no answer from {self.host} within {self._timeout:g} s")
        if isinstance(reason, ConnectionRefusedError):
            return _Retry(f"connection to {self.host} refused")
        return _Retry(f"connection to {self.host} failed: {reason}")

    def _asked_wait(self, headers: Headers) -> float | None:
        """Seconds until ``X-RateLimit-Reset`` (epoch seconds), or ``Retry-After``, if given."""
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is not None:
            # An epoch time; a small number can only be "seconds from now".
            return reset - self._clock() if reset > 1e9 else reset
        return _number(headers.get("Retry-After"))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


class _Connections:
    """Keep-alive HTTP connections to one URL, one per thread that uses them."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def get(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = kind(self._netloc, timeout=self._timeout)  # HTTPS: certificates verified
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def drop(self) -> None:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                self._open.discard(conn)

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _display_path(path: str) -> str:
    path = "/" + path.lstrip("/")
    return path if path.startswith("/v3/") else "/v3" + path


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _decode(body: bytes | None) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_messages(body: bytes | None) -> str:
    """SendGrid's ``{"errors": [{"message", "field"}]}`` as one line."""
    decoded = _decode(body)
    if not isinstance(decoded, dict) or not isinstance(decoded.get("errors"), list):
        return str(decoded)[:300] if decoded else ""
    parts = []
    for item in decoded["errors"]:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message") or "").strip()
        field = item.get("field")
        if field and field != "null":
            message += f" (field {field})"
        parts.append(message)
    return "; ".join(p for p in parts if p)


class SendGridTransport(Transport):
    """One Mail Send request per batch: one personalization per recipient, content sent once."""

    name: ClassVar[str] = "sendgrid"

    def __init__(
        self,
        settings: SendGridSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = TIMEOUT,
        api: SendGridAPI | None = None,
    ) -> None:
        self.max_batch = min(settings.batch_size, MAX_PERSONALIZATIONS)
        # Batches in flight at once: send_batch is thread-safe (a connection per thread).
        self.concurrency = settings.concurrency
        self.sandbox = settings.sandbox
        self.api = api or SendGridAPI(settings, sleep=sleep, timeout=timeout)
        # One request body built at a time: the GIL runs one builder anyway, and interleaved
        # builders would each hold a batch's dicts (~1 MB) at once.
        self._building = threading.Lock()

    def close(self) -> None:
        self.api.close()

    def send_batch(self, message: OutgoingMessage) -> Sequence[DeliveryResult]:
        """Send ``message`` in one request: all sendable recipients accepted, or an exception.

        A recipient whose name or address cannot go in a To field fails alone, unsent. The
        outcome is one ``BatchResults`` value (accepted under the request's X-Message-Id, and the
        failures), still one result per recipient when read.
        """
        if not message.recipients:
            return []
        if len(message.recipients) > self.max_batch:
            raise PermanentDeliveryError(
                f"a SendGrid batch holds at most {self.max_batch} recipients, "
                f"got {len(message.recipients)}"
            )
        sendable: tuple[Recipient, ...] = message.recipients
        failed: list[DeliveryResult] = []
        with self._building:
            # Every recipient passed the batch's checks: the usual case. The personalizations
            # live only until they are JSON, not while the request is on the wire.
            data = _quick_body(self, message)
        if data is None:
            sendable, to, failed = _sendable(message.recipients)
            if not sendable:
                return failed
            with self._building:
                data = dumps(self._payload(replace(message, recipients=sendable), to))
        check_payload_size(data)
        headers = self.api.mail_send(data)
        return BatchResults(sendable, headers.get("X-Message-Id"), failed)

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The Mail Send body, checked against SendGrid's limits (``PermanentDeliveryError``)."""
        to = [_address("To", r.email, r.name) for r in message.recipients]
        return self._payload(message, to)

    def _payload(self, message: OutgoingMessage, to: list[dict[str, str]]) -> dict[str, Any]:
        """``payload`` with each recipient's To object already checked (``to``, in order)."""
        self._check_subject(message)
        personalizations = [
            _personalization(message, r, t) for r, t in zip(message.recipients, to, strict=True)
        ]
        body = self._body(message, personalizations)
        _check_recipients(message.recipients)
        return body

    @staticmethod
    def _check_subject(message: OutgoingMessage) -> None:
        check_header("Subject", message.subject)
        if not message.subject.strip():
            raise PermanentDeliveryError("the message has an empty subject; SendGrid refuses it")

    def _body(
        self, message: OutgoingMessage, personalizations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The request body around ``personalizations``: what every recipient shares (the caller
        has checked the subject: ``_check_subject``)."""
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _address("From", message.sender_email, message.sender_name),
            "subject": message.subject,
            "content": _content(message),
            "tracking_settings": TRACKING_OFF,
            "mail_settings": {"sandbox_mode": {"enable": self.sandbox}},
        }
        shared = list_headers(message)  # List-Id, Precedence, Feedback-ID: as build_message's
        if shared:
            body["headers"] = _check_header_names(shared)
        if message.reply_to:
            body["reply_to"] = _address("Reply-To", message.reply_to, None)
        return body


def _quick_body(transport: SendGridTransport, message: OutgoingMessage) -> bytes | None:
    """The request body as JSON when ``_quick_personalizations`` can build it, else None."""
    quick = _quick_personalizations(message)
    if quick is None:
        return None
    transport._check_subject(message)
    return dumps(transport._body(message, quick))


_EMAIL, _NAME = attrgetter("email"), attrgetter("name")
_MESSAGE_ID, _LIST_UNSUBSCRIBE = attrgetter("message_id"), attrgetter("list_unsubscribe_url")
_SUBSTITUTIONS, _VALUES = attrgetter("substitutions"), methodcaller("values")
# A Placeholder key as its value (a plain str, one shared object); another key as it is.
_PLAIN_KEY = {placeholder: placeholder.value for placeholder in Placeholder}.get


def _quick_personalizations(message: OutgoingMessage) -> list[dict[str, Any]] | None:
    """The personalizations of a batch whose recipients all pass the checks made per batch.

    Every check ``_sendable``, ``_personalization`` and ``_check_recipients`` make per recipient
    is made here for the whole batch in a few C-level passes (addresses and names, duplicates,
    line breaks in the headers, the substitutions' size bound); then one lean loop builds the same
    personalizations, key for key and in the same order. None: some recipient fails a check (or
    might), and the caller takes the one-by-one path, which fails them alone or names the problem.
    """
    recipients = message.recipients
    month = message.issue_month
    if len(recipients) > MAX_RECIPIENTS or (month is not None and len(month) > _SHORT):
        return None
    emails = list(map(_EMAIL, recipients))
    names = list(map(_NAME, recipients))
    if not all_plain(names, emails):
        return None
    # Plain addresses are ASCII without line breaks: one lower() of the joined batch is theirs.
    if len(set("\n".join(emails).lower().split("\n"))) != len(emails):
        return None
    message_ids = list(map(_MESSAGE_ID, recipients))
    urls = list(map(_LIST_UNSUBSCRIBE, recipients))
    headers_text = "".join(message_ids) + "".join(filter(None, urls))
    if "\r" in headers_text or "\n" in headers_text:
        return None
    substitutions = list(map(_SUBSTITUTIONS, recipients))
    if not _substitutions_fit(substitutions):
        return None
    plain, one_click = _PLAIN_KEY, _ONE_CLICK["List-Unsubscribe-Post"]
    issue_arg, subscriber_arg = CUSTOM_ARG_ISSUE, CUSTOM_ARG_SUBSCRIBER
    built: list[dict[str, Any]] = []
    append = built.append
    for recipient, email, name, message_id, url, subs in zip(
        recipients, emails, names, message_ids, urls, substitutions, strict=True
    ):
        entry: dict[str, Any] = {
            "to": [{"email": email, "name": name} if name else {"email": email}]
        }
        if subs:
            entry["substitutions"] = dict(zip(map(plain, subs, subs), subs.values(), strict=True))
        if url:
            entry["headers"] = {
                "Message-ID": message_id,
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": one_click,
            }
        else:
            entry["headers"] = {"Message-ID": message_id}
        subscriber_id = recipient.subscriber_id
        if month:
            args = {issue_arg: month}
            if subscriber_id is not None:
                args[subscriber_arg] = str(subscriber_id)
            entry["custom_args"] = args
        elif subscriber_id is not None:
            entry["custom_args"] = {subscriber_arg: str(subscriber_id)}
        append(entry)
    return built


def _substitutions_fit(substitutions: Sequence[Mapping[Any, str]]) -> bool:
    """True when no recipient's substitutions can be near MAX_SUBSTITUTION_BYTES (a bound for the
    batch: the most entries of anyone times the longest key and value, all escaped 6 times)."""
    given = list(filter(None, substitutions))
    if not given:
        return True
    widest = max(map(len, given))
    longest = max(
        max(map(len, chain.from_iterable(given))),
        max(map(len, chain.from_iterable(map(_VALUES, given)))),
    )
    return widest * (2 * longest + 6) * 6 < MAX_SUBSTITUTION_BYTES


def _sendable(
    recipients: tuple[Recipient, ...],
) -> tuple[tuple[Recipient, ...], list[dict[str, str]], list[DeliveryResult]]:
    """The recipients whose name and address fit a To field, their To objects (checked once),
    and failed results for the rest."""
    sendable: list[Recipient] = []
    to: list[dict[str, str]] = []
    failed: list[DeliveryResult] = []
    for recipient in recipients:
        try:
            to.append(_address("To", recipient.email, recipient.name))
        except Exception as err:  # only this reader: the others still go
            failed.append(not_built(recipient, err))
        else:
            sendable.append(recipient)
    return tuple(sendable), to, failed


def _address(header: str, email: str, name: str | None) -> dict[str, str]:
    """A SendGrid email object; the name is literal text (SendGrid encodes it)."""
    display_name, address = check_address(header, name, email)
    if display_name:
        return {"email": address, "name": display_name}
    return {"email": address}


def _content(message: OutgoingMessage) -> list[dict[str, str]]:
    # text/plain first: SendGrid refuses text/html before it.
    if not message.text.strip():
        raise PermanentDeliveryError("the message has no plain-text body; SendGrid needs one")
    content = [{"type": "text/plain", "value": message.text}]
    if message.html is not None:
        if not message.html.strip():
            raise PermanentDeliveryError("the message's HTML body is empty; SendGrid refuses it")
        content.append({"type": "text/html", "value": message.html})
    return content


def _personalization(
    message: OutgoingMessage, recipient: Recipient, to: dict[str, str]
) -> dict[str, Any]:
    # Per-recipient work of every send: kept lean (1,000 of these per request).
    entry: dict[str, Any] = {"to": [to]}
    if recipient.substitutions:
        # Placeholder is a str enum: its value (a plain str) is the substitution key.
        subs: dict[str, str] = {key.value: value for key, value in recipient.substitutions.items()}
        _check_bytes(subs, MAX_SUBSTITUTION_BYTES, "substitutions", recipient)
        entry["substitutions"] = subs
    # Our Message-ID (kept in the ledger), so a copy sent again can be recognised as the same.
    headers = {"Message-ID": check_header("Message-ID", recipient.message_id)}
    if recipient.list_unsubscribe_url:
        url = check_header("List-Unsubscribe", recipient.list_unsubscribe_url)
        # RFC 8058 one-click unsubscribe, required of bulk senders by Gmail and Yahoo.
        headers["List-Unsubscribe"] = f"<{url}>"
        headers.update(_ONE_CLICK)
    entry["headers"] = headers
    args = {}
    if message.issue_month:
        args[CUSTOM_ARG_ISSUE] = message.issue_month
    if recipient.subscriber_id is not None:
        args[CUSTOM_ARG_SUBSCRIBER] = str(recipient.subscriber_id)
    if args:
        if len(message.issue_month or "") > _SHORT:  # else a month and an id: far below the limit
            _check_bytes(args, MAX_CUSTOM_ARGS_BYTES, "custom_args", recipient)
        entry["custom_args"] = args
    return entry


def _check_header_names(headers: Mapping[str, str]) -> Mapping[str, str]:
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            raise PermanentDeliveryError(f"SendGrid does not let a request set the {name} header")
    return headers


_ONE_CLICK = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
_check_header_names({"Message-ID": "", "List-Unsubscribe": "", **_ONE_CLICK})  # the names we set


_SHORT = 1000  # custom_args of a value this long plus an id stay far below 10,000 bytes


def _check_bytes(value: dict[str, str], limit: int, what: str, recipient: Recipient) -> None:
    # Fast path: even if every character needed a 6-byte JSON escape it would fit.
    if (sum(map(len, value)) + sum(map(len, value.values())) + 6 * len(value)) * 6 < limit:
        return
    size = len(json.dumps(value).encode("utf-8"))
    if size > limit:
        raise PermanentDeliveryError(
            f"the SendGrid {what} for {recipient.email} take {size} bytes; "
            f"SendGrid allows at most {limit:,} per personalization"
        )


def _check_recipients(recipients: tuple[Recipient, ...]) -> None:
    if len(recipients) > MAX_RECIPIENTS:
        raise PermanentDeliveryError(
            f"{len(recipients)} recipients in one SendGrid request; at most {MAX_RECIPIENTS}"
        )
    seen: set[str] = set()
    for recipient in recipients:
        key = recipient.email.lower()
        if key in seen:
            raise PermanentDeliveryError(
                f"{recipient.email} appears twice in one SendGrid batch; SendGrid refuses that"
            )
        seen.add(key)


def check_payload_size(data: str | bytes) -> None:
    """SendGrid refuses a request over 20 MB; say so before sending it."""
    size = len(data if isinstance(data, bytes) else data.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise PermanentDeliveryError(
            f"the SendGrid request would be {size / 1e6:.1f} MB; SendGrid allows at most "
            f"{MAX_PAYLOAD_BYTES / 1e6:.0f} MB (use a smaller delivery.sendgrid.batch_size "
            f"or a shorter issue)"
        )
