"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 that keeps what it receives.

Optional AUTH (PLAIN/LOGIN), STARTTLS or implicit TLS with a self-signed certificate made at test
time (``make_certificate``), recipients it refuses, a dropped connection after N messages, and
a server that stores a message, then dies before its reply (``die_after_storing``).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    """One message as the server got it: envelope plus the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for localhost / 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass
class _Handler:
    owner: SmtpServer

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        owner = self.owner
        with owner.lock:
            drop = owner.drop_after is not None and owner.since_drop >= owner.drop_after
            if drop:
                owner.drop_after = None
                owner.drops += 1
        transport: Any = server.transport
        if drop and transport is not None:
            transport.abort()  # no answer at all: the client sees the connection vanish
            return "421 4.3.0 gone"
        with owner.lock:
            scripted = owner.mail_replies.pop(0) if owner.mail_replies else None
        if scripted is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.owner.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        owner = self.owner
        with owner.lock:
            owner.messages.append(
                Received(
                    str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw, time.monotonic()
                )
            )
            owner.since_drop += 1
            die = owner.die_after_storing > 0
            owner.die_after_storing -= die
        transport: Any = server.transport
        if die and transport is not None:
            transport.abort()  # stored, but the client never hears the 250
            return "421 4.3.0 gone"
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class SmtpServer:
    """Start with ``with SmtpServer(...) as server:``; ``server.port``, ``server.messages``."""

    security: str = "none"  # none | starttls | tls
    certificate: Certificate | None = None  # required for starttls / tls
    username: str | None = None  # set: AUTH required with this user + password
    password: str | None = None
    refuse: set[str] = field(default_factory=set)  # recipients answered with 550
    drop_after: int | None = None  # abort the connection at the MAIL after this many messages
    mail_replies: list[str] = field(default_factory=list)  # answers to the next MAIL commands
    die_after_storing: int = 0  # the next N messages: store, then abort before the reply
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    drops: int = 0
    since_drop: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = "127.0.0.1"
    port: int = 0
    _controller: Controller | None = None

    def __post_init__(self) -> None:
        self.refuse = {a.lower() for a in self.refuse}
        if self.security != "none" and self.certificate is None:
            raise ValueError("starttls/tls need a certificate (make_certificate)")

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself

    def _smtp_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd only knows STARTTLS as "TLS"; over implicit TLS it must be told.
                auth_require_tls=self.security == "starttls",
            )
        if self.security == "starttls":
            assert self.certificate is not None
            kwargs.update(tls_context=self.certificate.server_context(), require_starttls=True)
        return kwargs

    def start(self) -> SmtpServer:
        ssl_context = None
        if self.security == "tls":
            assert self.certificate is not None
            ssl_context = self.certificate.server_context()
        last: Exception | None = None
        for _ in range(5):  # aiosmtpd cannot bind port 0 itself: pick a free port, retry on a race
            port = _free_port()
            controller = _CountingController(
                self,
                _Handler(self),
                hostname=self.host,
                port=port,
                ssl_context=ssl_context,
                **self._smtp_kwargs(),
            )
            try:
                controller.start()
            except (OSError, RuntimeError) as err:
                last = err
                continue
            self._controller, self.port = controller, port
            with self.lock:
                self.connections = 0  # the controller's own readiness probe does not count
            return self
        raise RuntimeError(f"could not start the SMTP server: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _CountingController(Controller):
    """Counts connections, so tests can see one connection reused (or a reconnect)."""

    def __init__(self, owner: SmtpServer, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        with self.owner.lock:
            self.owner.connections += 1
        with warnings.catch_warnings():
            # Over implicit TLS, AUTH is encrypted although aiosmtpd does not know it.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
