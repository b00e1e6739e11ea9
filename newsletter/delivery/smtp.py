"""The SMTP transport: ``smtplib`` over a small pool of reused connections, paced to ``rate``
messages a second in total.

Each recipient gets their own RFC 5322 message (built from the variant's template: multipart/
alternative, text first, Message-ID, Date, List-Unsubscribe). A dropped connection is re-opened
once and the message sent again; refusals of one recipient are results, refusals of the server
are errors.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from newsletter.config import OutOfRange, Section, checked
from newsletter.delivery.base import DeliveryResult, Transport, not_built, partial
from newsletter.delivery.registry import Provider
from newsletter.delivery.template import MessageTemplate, TemplateCache
from newsletter.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from newsletter.mime import check_message
from newsletter.models import OutgoingMessage, Recipient
from newsletter.values.clock import now_utc

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for connecting and for each SMTP command
MIN_RATE = 0.01  # messages per second: one every 100 s; slower is a typo, not pacing
MAX_RATE = 10_000.0
RATE_RANGE = f"a number of messages per second from {MIN_RATE:g} to {MAX_RATE:g}"
DEFAULT_CONNECTIONS = 3
MAX_CONNECTIONS = 16
CONNECTIONS_RANGE = f"a whole number of connections from 1 to {MAX_CONNECTIONS}"
BATCH_PER_CONNECTION = 50  # recipients per connection in a batch: one claim, one record


class SmtpSecurity(enum.StrEnum):
    """How the SMTP connection is protected (``delivery.smtp.security``)."""

    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587)
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # no encryption: a local relay or a test server only


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """``delivery.smtp:`` in schedule.yaml, plus the password from the environment."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None
    rate: float  # messages per second, at most, over all connections together
    connections: int = DEFAULT_CONNECTIONS  # sending at once, each its own SMTP session
    password: str | None = field(default=None, repr=False)  # NEWSLETTER_SMTP_PASSWORD


def parse_settings(section: Section, root: Path, env: Mapping[str, str]) -> SmtpSettings:
    """Host, port, security, username and rate, each checked where it stands in the file."""
    sec = section.expect("host", "port", "security", "username", "rate", "connections")
    return SmtpSettings(
        host=sec.text("host", "localhost"),
        port=checked(sec, "port", sec.scalar("port", 587), _port, "a port number"),
        security=checked(
            sec,
            "security",
            sec.text("security", "starttls"),
            SmtpSecurity,
            " | ".join(SmtpSecurity),
        ),
        username=sec.text("username", None),
        rate=checked(sec, "rate", sec.scalar("rate", 20), _rate, RATE_RANGE),
        connections=checked(
            sec,
            "connections",
            sec.scalar("connections", DEFAULT_CONNECTIONS),
            _connections,
            CONNECTIONS_RANGE,
        ),
        password=env.get("NEWSLETTER_SMTP_PASSWORD") or None,
    )


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(value)
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if not math.isfinite(value) or not MIN_RATE <= value <= MAX_RATE:
        raise OutOfRange(f"expected {RATE_RANGE}")
    return float(value)


def _connections(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(value)
    if not 1 <= value <= MAX_CONNECTIONS:
        raise OutOfRange(f"expected {CONNECTIONS_RANGE}")
    return value


PROVIDER = Provider(
    "smtp", "newsletter.delivery.smtp:SmtpTransport", settings=parse_settings, title="SMTP"
)


class SmtpTransport(Transport):
    """Sends through an SMTP server (STARTTLS, implicit TLS or plain), one message per recipient,
    over a pool of ``connections`` connections that share the one ``rate``.

    A batch (``max_batch`` = ``BATCH_PER_CONNECTION`` x ``connections``) is one claim and one
    record in the ledger. Its recipients are taken one at a time by whichever connection is free;
    a connection that fails stops taking, the others finish the batch. When one failed for good,
    ``send_batch`` raises its error as a ``PartialDelivery`` that says who was answered (the run
    records them) and who was not (given back, so ``--resume`` sends them).
    """

    name: ClassVar[str] = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.username and not settings.password:
            raise ConfigError(
                f"delivery.smtp.username is {settings.username!r} but NEWSLETTER_SMTP_PASSWORD "
                "is not set: export the SMTP password"
            )
        self.settings = settings
        self.max_batch = BATCH_PER_CONNECTION * settings.connections
        self._tls = tls_context or ssl.create_default_context()
        self._timeout = timeout
        self._sleep = sleep
        self._pacer = Pacer(settings.rate, clock)
        self._lines = [_Line(self, n) for n in range(settings.connections)]
        self._pool: ThreadPoolExecutor | None = None
        self._templates = TemplateCache()  # each variant's bytes built once, CRLF as SMTP wants
        self._counting = threading.Lock()
        self.connects = 0  # connections opened (one per line used, more if the server dropped us)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect the first line, secure and log in; errors say which setting to check.

        The other lines connect when a batch first needs them.
        """
        self._lines[0].open()
        if self._pool is None and len(self._lines) > 1:
            self._pool = ThreadPoolExecutor(len(self._lines) - 1, thread_name_prefix="smtp")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for line in self._lines:
            line.close()

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        check_message(message)  # a bad From or Subject stops the run; a bad To fails one reader
        now = now_utc()
        try:
            templates = self._templates.templates(message, now)
        except Exception as err:  # nothing of this variant can be built: each reader fails
            return [not_built(recipient, err) for recipient in message.recipients]
        work = _Work(message, templates, now)
        used = self._lines[: max(1, min(len(self._lines), len(message.recipients)))]
        if self._pool is None or len(used) == 1:
            used[0].drain(work)
        else:
            others = [self._pool.submit(line.drain, work) for line in used[1:]]
            used[0].drain(work)
            for future in others:
                future.result()
        return work.outcome()

    # --- one message ---------------------------------------------------------------------------

    def _send_one(
        self, line: _Line, message: OutgoingMessage, recipient: Recipient, data: bytes
    ) -> DeliveryResult:
        # A non-ASCII address makes an SMTPUTF8 message (RFC 6531); smtplib refuses it to a
        # server without the extension (SMTPNotSupportedError, below).
        addresses = (recipient.email, message.sender_email, message.reply_to or "")
        utf8 = not all(address.isascii() for address in addresses)
        options = ["SMTPUTF8", "BODY=8BITMIME"] if utf8 else []
        for attempt in (1, 2):
            conn = line.open()
            self._pacer.wait(self._sleep)
            try:
                if options:
                    conn.sendmail(
                        message.sender_email, [recipient.email], data, mail_options=options
                    )
                else:
                    _transact(conn, message.sender_email, recipient.email, data)
            except smtplib.SMTPRecipientsRefused as err:
                code, reply = next(iter(err.recipients.values()))
                return DeliveryResult(recipient, accepted=False, error=_reply(code, reply))
            except smtplib.SMTPNotSupportedError as err:
                return DeliveryResult(recipient, accepted=False, error=f"{self.where}: {err}")
            except smtplib.SMTPResponseException as err:
                if err.smtp_code != 421 or attempt == 2:  # 421: the server is closing on us
                    raise self._refused(err, "refused the message") from err
                line.lost(err)
            except (smtplib.SMTPServerDisconnected, OSError) as err:
                line.lost(err)
                if attempt == 2:
                    raise TemporaryDeliveryError(
                        f"SMTP server {self.where} dropped the connection again: {err}"
                    ) from err
            else:
                return DeliveryResult(
                    recipient, accepted=True, provider_message_id=recipient.message_id
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _connected(self) -> None:
        with self._counting:
            self.connects += 1

    # --- connecting ----------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        try:
            conn = self._open_socket()
            try:
                self._secure_and_login(conn)
            except BaseException:
                conn.close()
                raise
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as err:
            raise PermanentDeliveryError(
                f"SMTP server {self.where} refused the login of {self.settings.username!r}: "
                f"{_reply(err.smtp_code, err.smtp_error)} (check delivery.smtp.username and "
                "NEWSLETTER_SMTP_PASSWORD)"
            ) from err
        except smtplib.SMTPNotSupportedError as err:
            raise PermanentDeliveryError(
                f"SMTP server {self.where}: {err} (check delivery.smtp.security)"
            ) from err
        except smtplib.SMTPResponseException as err:
            raise self._refused(err, "refused the connection") from err
        except ssl.SSLError as err:
            raise PermanentDeliveryError(
                f"SMTP server {self.where}: TLS failed: {err.reason or err} (check "
                "delivery.smtp.security: starttls for port 587, tls for port 465)"
            ) from err
        except (smtplib.SMTPException, OSError) as err:
            raise TemporaryDeliveryError(
                f"cannot connect to SMTP server {self.where}: {err}"
            ) from err
        self._connected()
        return conn

    def _open_socket(self) -> smtplib.SMTP:
        host, port = self.settings.host, self.settings.port
        if self.settings.security == SmtpSecurity.TLS:
            return smtplib.SMTP_SSL(host, port, timeout=self._timeout, context=self._tls)
        return smtplib.SMTP(host, port, timeout=self._timeout)

    def _secure_and_login(self, conn: smtplib.SMTP) -> None:
        conn.ehlo()
        if self.settings.security == SmtpSecurity.STARTTLS:
            if not conn.has_extn("starttls"):
                raise PermanentDeliveryError(
                    f"SMTP server {self.where} does not offer STARTTLS (check delivery.smtp.security)"
                )
            conn.starttls(context=self._tls)
            conn.ehlo()
        if self.settings.username and self.settings.password:
            conn.login(self.settings.username, self.settings.password)

    def _refused(self, err: smtplib.SMTPResponseException, what: str) -> DeliveryError:
        text = f"SMTP server {self.where} {what}: {_reply(err.smtp_code, err.smtp_error)}"
        if 400 <= err.smtp_code < 500:
            return TemporaryDeliveryError(text)
        return PermanentDeliveryError(text)


class Pacer:
    """At most ``rate`` messages a second over every connection: each message waits for its slot.

    The slot is taken under a lock and waited for outside it, so the connections share one rate.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, sleep: Callable[[float], None]) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            sleep(slot - now)


class _Work:
    """One batch shared by the connections: the next recipient to take, and what each got."""

    def __init__(self, message: OutgoingMessage, templates: MessageTemplate, now: datetime) -> None:
        self.message = message
        self.templates = templates
        self.now = now
        self.results: list[DeliveryResult | None] = [None] * len(message.recipients)
        self.unsent = [True] * len(message.recipients)  # never handed to the server
        self.errors: list[DeliveryError] = []
        self.refused = False  # a permanent refusal (the sender, the message): take no more
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """The next recipient's index; None when none is left or the server refused us for good."""
        with self._lock:
            index = self._next
            if index >= len(self.results) or self.refused:
                return None
            self._next += 1
            return index

    def outcome(self) -> list[DeliveryResult]:
        """Every result; or, when a connection failed, its error with who was answered."""
        answered = [result for result in self.results if result is not None]
        if not self.errors:
            return answered
        recipients = self.message.recipients
        unsent = tuple(r for r, never in zip(recipients, self.unsent, strict=True) if never)
        raise partial(self.errors[0], answered, unsent)


class _Line:
    """One connection of the pool, used by one thread at a time (one batch's ``drain``)."""

    def __init__(self, transport: SmtpTransport, number: int) -> None:
        self.transport = transport
        self.number = number
        self.conn: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        if self.conn is None:
            self.conn = self.transport._connect()
        return self.conn

    def lost(self, err: BaseException) -> None:
        """Forget a dead connection; the next attempt opens a new one."""
        log.warning(
            "SMTP server %s dropped connection %d (%s); reconnecting",
            self.transport.where,
            self.number + 1,
            err,
        )
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def drain(self, work: _Work) -> None:
        """Send recipients of ``work`` until none is left or this connection fails."""
        recipients, transport = work.message.recipients, self.transport
        while (index := work.take()) is not None:
            recipient = recipients[index]
            try:
                data = work.templates.render(recipient, work.now)
            except Exception as err:  # only this reader's message: the others still go
                work.results[index], work.unsent[index] = not_built(recipient, err), False
                continue
            try:
                work.results[index] = transport._send_one(self, work.message, recipient, data)
            except DeliveryError as err:
                # Refused, unreachable, or dropped twice: given back with the never-sent ones, so
                # --resume sends it (resending rather than losing, as after one drop above).
                work.errors.append(err)
                work.refused = work.refused or isinstance(err, PermanentDeliveryError)
                return
            work.unsent[index] = False


def _transact(conn: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
    """``conn.sendmail(sender, [recipient], data)`` for ASCII addresses, without its per-message
    address parsing and regular expression: the same commands, replies and exceptions.

    The addresses were checked when the message was (``check_message``) and the subscriber stored.
    """
    conn.putcmd("mail", f"FROM:<{sender}>")
    code, reply = conn.getreply()
    if code != 250:
        _after_refusal(conn, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    conn.putcmd("rcpt", f"TO:<{recipient}>")
    code, reply = conn.getreply()
    if code not in (250, 251):
        _after_refusal(conn, code)
        raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
    conn.putcmd("data")
    code, reply = conn.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    # Dot-stuffing (RFC 5321 4.5.2) as smtplib's regular expression does, by two replaces.
    quoted = data.replace(b"\n.", b"\n..")
    if quoted.startswith(b"."):
        quoted = b"." + quoted
    conn.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, reply = conn.getreply()
    if code != 250:
        _after_refusal(conn, code)
        raise smtplib.SMTPDataError(code, reply)


def _after_refusal(conn: smtplib.SMTP, code: int) -> None:
    """As ``sendmail``: a 421 closes the connection, any other refusal resets the transaction."""
    if code == 421:
        conn.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"
