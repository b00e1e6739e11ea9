"""SendGrid's Signed Event Webhook: the signature scheme, and each event in the program's words.

SendGrid signs ``timestamp header + raw body`` with ECDSA P-256 / SHA-256 and sends the base64
DER signature in ``X-Twilio-Email-Event-Webhook-Signature``; the public key (base64 DER, as the
SendGrid console shows it) comes from ``NEWSLETTER_SENDGRID_WEBHOOK_KEY``. Without a key the
route refuses to work: an unverified webhook would let anyone unsubscribe anyone. The HTTP part
(body limit, order of checks, JSON) is ``newsletter.web.webhooks``; applying events is
``newsletter.web.events``. This is the only module that imports ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from newsletter.delivery.hooks import InboundEvent, LedgerUpdate, SignatureError
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import CUSTOM_ARG_ISSUE, CUSTOM_ARG_SUBSCRIBER
from newsletter.errors import ConfigError
from newsletter.models import SubscriberStatus
from newsletter.values.clock import now_utc

if TYPE_CHECKING:
    from newsletter.config import Settings

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
KEY_VARIABLE = "NEWSLETTER_SENDGRID_WEBHOOK_KEY"
MAX_SKEW = 10 * 60  # seconds: older (or further in the future) deliveries are refused as replays
MAX_SIGNATURE_CHARS = 200  # a DER P-256 signature is at most 72 bytes (96 base64 characters)
MAX_BODY = 8 * 1024 * 1024  # bytes: SendGrid batches events, a post stays far below this
LEDGER_EVENTS = ("delivered", "bounce", "dropped")


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text; ``ConfigError`` when it is not a P-256 key."""
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as err:
        raise ConfigError(
            f"{KEY_VARIABLE}: not a base64 DER public key (copy the "
            "verification key from SendGrid's Mail Settings → Signed Event Webhook)"
        ) from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{KEY_VARIABLE}: expected an ECDSA P-256 public key")
    return key


def check_headers(signature: str | None, timestamp: str | None, now: float | None = None) -> None:
    """Raise ``SignatureError`` unless both headers are there, well-formed and fresh (no body needed)."""
    if not signature or not timestamp:
        raise SignatureError("unsigned: the signature or timestamp header is missing")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError("the timestamp header is not a Unix time")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > MAX_SKEW:
        raise SignatureError(f"stale: the timestamp is {int(skew)} s away from now")
    if len(signature) > MAX_SIGNATURE_CHARS:
        raise SignatureError("the signature is too long")


def verify_signature(
    key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``signature`` signs ``timestamp + body`` and is fresh."""
    check_headers(signature, timestamp, now)
    assert signature is not None and timestamp is not None  # checked just above
    try:
        raw_signature = base64.b64decode(signature, validate=True)
        key.verify(raw_signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error) as err:
        raise SignatureError("the signature does not match the body") from err


class SendGridVerifier:
    """Checks SendGrid's two signing headers, then the ECDSA signature of the body."""

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self.key = key

    def check_headers(self, headers: Mapping[str, str]) -> None:
        check_headers(headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER))

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
        verify_signature(self.key, signature, timestamp, body)


class SendGridWebhook:
    """The ``Webhook`` hook of the SendGrid provider (``POST /webhooks/sendgrid``)."""

    title = "SendGrid"
    max_body = MAX_BODY

    def verifier(self, settings: Settings) -> SendGridVerifier:
        key_text = settings.delivery.of(SendGridSettings).webhook_key
        if not key_text:
            raise ConfigError(f"{KEY_VARIABLE} is not set")
        return SendGridVerifier(load_public_key(key_text))

    def startup_note(self, settings: Settings) -> str | None:
        key_text = settings.delivery.of(SendGridSettings).webhook_key
        if key_text:
            load_public_key(key_text)
            return None
        return f"{KEY_VARIABLE} is not set; /webhooks/sendgrid answers 503"

    def events(self, items: Sequence[Mapping[str, Any]]) -> list[InboundEvent | None]:
        return [inbound_event(item) for item in items]


WEBHOOK = SendGridWebhook()


# --- SendGrid's events in our words ------------------------------------------------------------


def _text(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    return (
        str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    )


def _is_id(text: str) -> bool:
    """Only ASCII digits, and not absurdly many (``str.isdigit`` also accepts "²")."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def target_status(event: Mapping[str, Any]) -> tuple[SubscriberStatus, str] | None:
    """The status an event asks for, with the reason to record; None for events that set none."""
    kind = _text(event, "event")
    detail = _text(event, "reason") or _text(event, "type")
    if kind == "bounce":
        if (
            _text(event, "type") == "blocked"
        ):  # a temporary block by the receiver, not a bad address
            return None
        return SubscriberStatus.BOUNCED, f"SendGrid: bounced ({detail or 'no reason given'})"
    if kind == "dropped":
        if "unsubscribe" in detail.lower():
            return SubscriberStatus.UNSUBSCRIBED, f"SendGrid: dropped ({detail})"
        if "spam" in detail.lower():
            return SubscriberStatus.COMPLAINED, f"SendGrid: dropped ({detail})"
        return SubscriberStatus.BOUNCED, f"SendGrid: dropped ({detail or 'no reason given'})"
    if kind == "spamreport":
        return SubscriberStatus.COMPLAINED, "SendGrid: marked as spam by the reader"
    if kind in ("unsubscribe", "group_unsubscribe"):
        return SubscriberStatus.UNSUBSCRIBED, f"SendGrid: {kind.replace('_', ' ')} by the reader"
    return None


def ledger_update(event: Mapping[str, Any]) -> LedgerUpdate | None:
    """``delivered`` stamps delivered_at once; ``bounce``/``dropped`` mark the row failed once."""
    kind = _text(event, "event")
    if kind not in LEDGER_EVENTS:
        return None
    error = (
        ""
        if kind == "delivered"
        else f"{kind}: {_text(event, 'reason') or _text(event, 'type') or 'no reason given'}"
    )
    return LedgerUpdate(
        delivered=kind == "delivered",
        at=_event_time(event) or now_utc(),
        issue=_text(event, CUSTOM_ARG_ISSUE),
        provider_message_id=_text(event, "sg_message_id").split(".")[0],
        error=error,
    )


def inbound_event(event: Mapping[str, Any]) -> InboundEvent | None:
    """One SendGrid event as an ``InboundEvent``; None for kinds that change nothing here."""
    wanted = target_status(event)
    ledger = ledger_update(event)
    if wanted is None and ledger is None:
        return None
    raw_id = _text(event, CUSTOM_ARG_SUBSCRIBER)
    event_id = _text(event, "sg_event_id")
    return InboundEvent(
        email=_text(event, "email"),
        subscriber_id=int(raw_id) if _is_id(raw_id) else None,
        status=wanted[0] if wanted else None,
        reason=wanted[1] if wanted else "",
        external_id=f"sendgrid:{event_id}"[:200] if event_id else None,
        ledger=ledger,
    )


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 2**33:
        return datetime.fromtimestamp(stamp, UTC)
    return None
