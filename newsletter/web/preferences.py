"""``/preferences/{token}``: change the name and topics of interest, or unsubscribe (CSRF-protected)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import InvalidNameError, NewsletterError, SubscriberError, TokenError
from newsletter.issues import load_topics
from newsletter.models import Subscriber, TopicMode
from newsletter.tokens import Purpose
from newsletter.web.pages import WebContext, context_of, rate_limited
from newsletter.web.security import CSRF_FIELD, CsrfError
from newsletter.web.subscribe import name_error

log = logging.getLogger("newsletter.web.preferences")

FORM = "preferences"
INVALID = "This preferences link is not valid. Use the link at the bottom of any issue."


def known_topics(ctx: WebContext) -> tuple[str, ...]:
    """The topic vocabulary of ``issues/topics.yaml``, read each time (editing it needs no restart)."""
    try:
        return load_topics(ctx.settings.topics_file)
    except NewsletterError as err:
        log.error("topics unavailable: %s", err)
        return ()


def _page(
    ctx: WebContext,
    request: Request,
    subscriber: Subscriber,
    *,
    status: int = 200,
    saved: bool = False,
    error: str = "",
    name: str | None = None,
    chosen: Sequence[str] | None = None,
    mode: str | None = None,
) -> Response:
    nonce, is_new = ctx.csrf.nonce_for(request)
    topics = known_topics(ctx)
    chosen = subscriber.topics if chosen is None else chosen
    extra = [topic for topic in chosen if topic not in topics]  # chosen once, since renamed
    response = ctx.page(
        "preferences.html.j2",
        status=status,
        saved=saved,
        error=error,
        suppressed=subscriber.status.is_suppressed,
        csrf_token=ctx.csrf.token(FORM, nonce),
        name=(subscriber.name or "") if name is None else name,
        topics=(*topics, *extra),
        chosen=set(chosen),
        topic_mode=subscriber.topic_mode.value if mode is None else mode,
        action=f"/preferences/{request.path_params['token']}",
        unsubscribe_action=f"/unsubscribe/{ctx.signer.sign(Purpose.UNSUBSCRIBE, subscriber.id)}",
    )
    if is_new:
        ctx.csrf.set_cookie(response, nonce, request)
    return response


def _subscriber(ctx: WebContext, request: Request) -> Subscriber | None:
    try:
        subscriber_id = ctx.signer.verify(Purpose.PREFERENCES, request.path_params["token"])
    except TokenError:
        return None
    return ctx.store.get_by_id(subscriber_id)


def preferences_page(request: Request) -> Response:
    """GET: the form, filled with what is stored."""
    ctx = context_of(request)
    subscriber = _subscriber(ctx, request)
    if subscriber is None:
        return ctx.error_page(400, INVALID)
    return _page(ctx, request, subscriber)


async def preferences_submit(request: Request) -> Response:
    """POST: save name and topics (known topics only), then show the form again."""
    ctx = context_of(request)
    refused = rate_limited(ctx, ctx.form_limiter, request)
    if refused is not None:
        return refused
    form = await request.form()
    name = str(form.get("name", ""))  # checked by the store: a refused name is a form error
    chosen = [str(topic) for topic in form.getlist("topics")]
    mode = str(form.get("topic_mode", TopicMode.ALL.value))
    csrf = str(form.get(CSRF_FIELD, ""))
    return await run_in_threadpool(_save, ctx, request, name, chosen, csrf, mode)


def _save(
    ctx: WebContext,
    request: Request,
    name: str,
    chosen: list[str],
    csrf: str,
    mode: str = TopicMode.ALL.value,
) -> Response:
    """Check the token and the form, store the choice, answer with the form again."""
    topic_mode = TopicMode.ONLY if mode == TopicMode.ONLY.value else TopicMode.ALL
    subscriber = _subscriber(ctx, request)
    if subscriber is None:
        return ctx.error_page(400, INVALID)
    try:
        ctx.csrf.check(FORM, request, csrf)
    except CsrfError as err:
        log.info("preferences form refused: %s", err)
        message = "This form expired or your browser did not send its cookie. Please try again."
        return _page(ctx, request, subscriber, status=400, error=message, name=name, chosen=chosen)
    try:
        updated = ctx.store.update_preferences(
            subscriber.id,
            name=name or None,
            topics=chosen,
            known_topics=(*known_topics(ctx), *subscriber.topics),
            topic_mode=topic_mode,
        )
    except InvalidNameError as err:
        error = f"Not saved. {name_error(err)}"
        return _page(ctx, request, subscriber, status=400, error=error, name=name, chosen=chosen)
    except SubscriberError as err:
        error = f"Not saved: {err}."
        return _page(ctx, request, subscriber, status=400, error=error, name=name, chosen=chosen)
    log.info("subscriber %s changed their preferences", subscriber.id)
    return _page(ctx, request, updated, saved=True)
