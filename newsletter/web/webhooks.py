"""``POST /webhooks/sendgrid``: SendGrid's Signed Event Webhook, verified before anything changes.

SendGrid signs ``timestamp header + raw body`` with ECDSA P-256 / SHA-256 and sends the base64
DER signature in ``X-Twilio-Email-Event-Webhook-Signature``; the public key (base64 DER, as the
SendGrid console shows it) comes from ``NEWSLETTER_SENDGRID_WEBHOOK_KEY``. Without a key the
route refuses to work: an unverified webhook would let anyone unsubscribe anyone. This is the
only module that imports ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.errors import ConfigError
from newsletter.web.events import apply_events
from newsletter.web.pages import WebContext, context_of
from newsletter.web.security import BodyTooLarge

log = logging.getLogger("newsletter.web.webhooks")

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SKEW = 10 * 60  # seconds: older (or further in the future) deliveries are refused as replays
MAX_SIGNATURE_CHARS = 200  # a DER P-256 signature is at most 72 bytes (96 base64 characters)
MAX_BODY = 8 * 1024 * 1024  # bytes: SendGrid batches events, a post stays far below this


class SignatureError(Exception):
    """The request is not a fresh, correctly signed SendGrid event post."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text; ``ConfigError`` when it is not a P-256 key."""
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as err:
        raise ConfigError(
            "NEWSLETTER_SENDGRID_WEBHOOK_KEY: not a base64 DER public key (copy the "
            "verification key from SendGrid's Mail Settings → Signed Event Webhook)"
        ) from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("NEWSLETTER_SENDGRID_WEBHOOK_KEY: expected an ECDSA P-256 public key")
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


def _parse_events(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError("the body is not JSON") from err
    except RecursionError as err:  # [[[[…]]]] nested deeper than the parser's stack
        raise ValueError("the body is nested too deeply") from err
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("expected a JSON array of event objects")
    return data


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The body, read chunk by chunk; None as soon as it passes ``limit`` bytes (the rest is never read)."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
    except BodyTooLarge:  # the app-wide limit saw it first (e.g. a too-large Content-Length)
        return None
    return bytes(body)


def _refused(request: Request, err: SignatureError) -> Response:
    log.warning(
        "SendGrid webhook from %s refused: %s",
        request.client.host if request.client else "?",
        err,
    )
    return JSONResponse({"error": "invalid signature"}, status_code=403)


def _key(ctx: WebContext) -> ec.EllipticCurvePublicKey | None:
    """The configured verification key; None (logged) when missing or unusable."""
    key_text = ctx.settings.webhook_public_key
    if not key_text:
        log.error("SendGrid webhook refused: NEWSLETTER_SENDGRID_WEBHOOK_KEY is not set")
        return None
    try:
        return load_public_key(key_text)
    except ConfigError as err:
        log.error("SendGrid webhook refused: %s", err)
        return None


async def sendgrid_webhook(request: Request) -> Response:
    """Verify, then apply each event once; 503 without a key, 403 when forged or stale, 413 when huge.

    The headers are checked before a byte of the body is read, and the body is read only up to
    ``MAX_BODY``: an unsigned or oversized post costs no memory.
    """
    ctx = context_of(request)
    key = _key(ctx)
    if key is None:
        return JSONResponse({"error": "the webhook is not configured"}, status_code=503)
    signature, timestamp = (
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(TIMESTAMP_HEADER),
    )
    try:
        check_headers(signature, timestamp)
    except SignatureError as err:
        return _refused(request, err)
    body = await read_body(request)
    if body is None:
        log.warning("SendGrid webhook refused: the body is larger than %d bytes", MAX_BODY)
        return JSONResponse({"error": "the body is too large"}, status_code=413)
    try:
        verify_signature(key, signature, timestamp, body)
    except SignatureError as err:
        return _refused(request, err)
    try:
        events = _parse_events(body)
    except ValueError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    outcome = await run_in_threadpool(apply_events, ctx.database, events)
    log.info("SendGrid webhook: %s", outcome)
    return JSONResponse(outcome.as_dict())
