"""``/unsubscribe/{token}``: GET shows one button and changes nothing; POST unsubscribes at once.

Mail scanners and link previews follow GET links, so only a POST changes anything. The POST is
also RFC 8058's one-click unsubscribe (``List-Unsubscribe=One-Click``) that mail clients send
without cookies, so it needs no CSRF token: the signed token in the path is the authority.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import SubscriberError, TokenError
from newsletter.tokens import Purpose
from newsletter.web.pages import WebContext, context_of

log = logging.getLogger("newsletter.web.unsubscribe")

INVALID = (
    "This unsubscribe link is not valid. Use the link at the bottom of any issue, or reply to it."
)
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


def _subscriber_id(ctx: WebContext, token: str) -> int | None:
    try:
        return ctx.signer.verify(Purpose.UNSUBSCRIBE, token)
    except TokenError:
        return None


def unsubscribe_page(request: Request) -> Response:
    """GET: the page with the button (posting back to this same path)."""
    ctx = context_of(request)
    token = request.path_params["token"]
    subscriber_id = _subscriber_id(ctx, token)
    if subscriber_id is None:
        return ctx.error_page(400, INVALID)
    subscriber = ctx.store.get_by_id(subscriber_id)
    suppressed = subscriber is None or subscriber.status.is_suppressed
    preferences_token = ctx.signer.sign(Purpose.PREFERENCES, subscriber_id)
    return ctx.page(
        "unsubscribe.html.j2",
        suppressed=suppressed,
        action=f"/unsubscribe/{token}",
        preferences_url=f"/preferences/{preferences_token}",
    )


def _unsubscribe(ctx: WebContext, subscriber_id: int, reason: str) -> bool:
    try:
        return ctx.store.unsubscribe(subscriber_id, reason=reason, source="web")
    except SubscriberError:
        return False  # forgotten or gone: nobody left to mail, which is what was asked


async def unsubscribe_submit(request: Request) -> Response:
    """POST: unsubscribe now and record why; the one-click POST gets the same quick 200."""
    ctx = context_of(request)
    subscriber_id = _subscriber_id(ctx, request.path_params["token"])
    if subscriber_id is None:
        return ctx.error_page(400, INVALID)
    form = await request.form()
    one_click = form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    reason = "one-click unsubscribe from the mail client" if one_click else "unsubscribe page"
    changed = await run_in_threadpool(_unsubscribe, ctx, subscriber_id, reason)
    log.info(
        "subscriber %s unsubscribed (%s)%s", subscriber_id, reason, "" if changed else ": no change"
    )
    return ctx.page("unsubscribed.html.j2")
