"""The SMTP transport: ``smtplib`` over one reused connection, paced to ``rate`` messages a second.

Each recipient gets their own RFC 5322 message (``mime.build_message``: multipart/alternative,
text first, Message-ID, Date, List-Unsubscribe). A dropped connection is re-opened once and the
message sent again; refusals of one recipient are results, refusals of the server are errors.
"""

from __future__ import annotations

import enum
import logging
import math
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from newsletter.config import OutOfRange, Section, checked
from newsletter.delivery.base import DeliveryResult, Transport, not_built
from newsletter.delivery.registry import Provider
from newsletter.delivery.template import TemplateCache
from newsletter.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from newsletter.mime import check_message
from newsletter.models import OutgoingMessage, Recipient

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for connecting and for each SMTP command
MIN_RATE = 0.01  # messages per second: one every 100 s; slower is a typo, not pacing
MAX_RATE = 1000.0
RATE_RANGE = f"a number of messages per second from {MIN_RATE:g} to {MAX_RATE:g}"


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
    rate: float  # messages per second, at most
    password: str | None = field(default=None, repr=False)  # NEWSLETTER_SMTP_PASSWORD


def parse_settings(section: Section, root: Path, env: Mapping[str, str]) -> SmtpSettings:
    """Host, port, security, username and rate, each checked where it stands in the file."""
    sec = section.expect("host", "port", "security", "username", "rate")
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


PROVIDER = Provider(
    "smtp", "newsletter.delivery.smtp:SmtpTransport", settings=parse_settings, title="SMTP"
)


class SmtpTransport(Transport):
    """Sends through an SMTP server (STARTTLS, implicit TLS or plain), one message per recipient.

    ``max_batch`` is 1: an error then concerns exactly one message, so a recipient who already
    got the issue is never reported as failed (and resent) because a later one failed.
    """

    name: ClassVar[str] = "smtp"
    max_batch = 1

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
        self._tls = tls_context or ssl.create_default_context()
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._interval = 1.0 / settings.rate
        self._next_send = 0.0
        self._conn: smtplib.SMTP | None = None
        self._templates = TemplateCache()  # each variant's bytes built once, CRLF as SMTP wants
        self.connects = 0  # how many connections were opened (one, unless the server dropped us)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure and log in; errors say which setting to check."""
        if self._conn is None:
            self._conn = self._connect()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        check_message(message)  # a bad From or Subject stops the run; a bad To fails one reader
        return [self._send_one(message, recipient) for recipient in message.recipients]

    # --- one message ---------------------------------------------------------------------------

    def _send_one(self, message: OutgoingMessage, recipient: Recipient) -> DeliveryResult:
        now = datetime.now(UTC)
        try:
            data = self._templates.templates(message, now).render(recipient, now)
        except Exception as err:  # only this reader's message: the others still go
            return not_built(recipient, err)
        # A non-ASCII address makes an SMTPUTF8 message (RFC 6531); smtplib refuses it to a
        # server without the extension (SMTPNotSupportedError, below).
        addresses = (recipient.email, message.sender_email, message.reply_to or "")
        utf8 = not all(address.isascii() for address in addresses)
        options = ["SMTPUTF8", "BODY=8BITMIME"] if utf8 else []
        for attempt in (1, 2):
            self.open()
            assert self._conn is not None
            self._pace()
            try:
                self._conn.sendmail(
                    message.sender_email, [recipient.email], data, mail_options=options
                )
            except smtplib.SMTPRecipientsRefused as err:
                code, reply = next(iter(err.recipients.values()))
                return DeliveryResult(recipient, accepted=False, error=_reply(code, reply))
            except smtplib.SMTPNotSupportedError as err:
                return DeliveryResult(recipient, accepted=False, error=f"{self.where}: {err}")
            except smtplib.SMTPResponseException as err:
                if err.smtp_code != 421 or attempt == 2:  # 421: the server is closing on us
                    raise self._refused(err, "refused the message") from err
                self._lost(err)
            except (smtplib.SMTPServerDisconnected, OSError) as err:
                if attempt == 2:
                    raise TemporaryDeliveryError(
                        f"SMTP server {self.where} dropped the connection again: {err}"
                    ) from err
                self._lost(err)
            else:
                return DeliveryResult(
                    recipient, accepted=True, provider_message_id=recipient.message_id
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost(self, err: BaseException) -> None:
        """Forget a dead connection; the next attempt opens a new one."""
        log.warning("SMTP server %s dropped the connection (%s); reconnecting", self.where, err)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _pace(self) -> None:
        """At most ``rate`` messages a second: each waits for its slot."""
        now = self._clock()
        if now < self._next_send:
            self._sleep(self._next_send - now)
            now = self._next_send
        self._next_send = now + self._interval

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
        self.connects += 1
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


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"
