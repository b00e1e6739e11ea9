"""``POST /webhooks/{provider}``: a provider's event webhook, verified before anything changes.

The HTTP part is the same for every provider: the signing headers are checked before a byte of
the body is read, the body is read only up to the provider's limit, then verified, decoded as a
JSON array of event objects and applied. What is the provider's (signature scheme, event kinds)
is its ``Webhook`` hook (``newsletter.delivery.hooks``); a provider without one answers 404.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.delivery.hooks import SignatureError, Verifier, Webhook
from newsletter.delivery.registry import get_provider
from newsletter.errors import ConfigError
from newsletter.web.events import apply_events
from newsletter.web.pages import WebContext, context_of
from newsletter.web.security import BodyTooLarge

log = logging.getLogger("newsletter.web.webhooks")

MAX_BODY = 8 * 1024 * 1024  # bytes: the app-wide ceiling of any webhook post (BodyLimit)


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


async def read_body(request: Request, limit: int) -> bytes | None:
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


def _hook(name: str) -> Webhook:
    """The webhook hook of provider ``name``; 404 for an unknown provider or one without a webhook."""
    try:
        hook = get_provider(name).webhook_hook()
    except ConfigError:
        hook = None
    if hook is None:
        raise HTTPException(404)
    return hook


def _verifier(ctx: WebContext, hook: Webhook) -> Verifier | None:
    """The verifier of the configured key; None (logged) when it is missing or unusable."""
    try:
        return hook.verifier(ctx.settings)
    except ConfigError as err:
        log.error("%s webhook refused: %s", hook.title, err)
        return None


def _refused(request: Request, hook: Webhook, err: SignatureError) -> Response:
    log.warning(
        "%s webhook from %s refused: %s",
        hook.title,
        request.client.host if request.client else "?",
        err,
    )
    return JSONResponse({"error": "invalid signature"}, status_code=403)


async def provider_webhook(request: Request) -> Response:
    """Verify, then apply each event once; 503 without a key, 403 when forged or stale, 413 when huge.

    The headers are checked before a byte of the body is read, and the body is read only up to
    the provider's ``max_body``: an unsigned or oversized post costs no memory.
    """
    hook = _hook(request.path_params["provider"])
    ctx = context_of(request)
    verifier = _verifier(ctx, hook)
    if verifier is None:
        return JSONResponse({"error": "the webhook is not configured"}, status_code=503)
    try:
        verifier.check_headers(request.headers)
    except SignatureError as err:
        return _refused(request, hook, err)
    limit = min(hook.max_body, MAX_BODY)
    body = await read_body(request, limit)
    if body is None:
        log.warning("%s webhook refused: the body is larger than %d bytes", hook.title, limit)
        return JSONResponse({"error": "the body is too large"}, status_code=413)
    try:
        verifier.verify(request.headers, body)
    except SignatureError as err:
        return _refused(request, hook, err)
    try:
        events = hook.events(_parse_events(body))
    except ValueError as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    outcome = await run_in_threadpool(apply_events, ctx.database, events)
    log.info("%s webhook: %s", hook.title, outcome)
    return JSONResponse(outcome.as_dict())
