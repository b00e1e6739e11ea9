"""Double opt-in: ``/subscribe`` makes a pending subscriber and mails a link; ``/confirm/{token}`` activates.

The answer to a subscribe form never depends on whether the address is known, suppressed or
refused by the validator (no address enumeration): the work, and the email, happen in a
background task after the same "check your inbox" page has gone out.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import (
    DeliveryError,
    InvalidNameError,
    NewsletterError,
    SubscriberError,
    TokenError,
)
from newsletter.mime import new_message_id
from newsletter.models import OutgoingMessage, Recipient, Subscriber, SubscriberStatus
from newsletter.store.subscribers import AlreadySubscribedError, clean_name, normalise_email
from newsletter.tokens import Purpose
from newsletter.web.pages import WebContext, context_of, rate_limited
from newsletter.web.security import CSRF_FIELD, CsrfError, client_ip

log = logging.getLogger("newsletter.web.subscribe")

FORM = "subscribe"
HONEYPOT_FIELD = "website"
MAX_EMAIL_LENGTH = 320


def confirm_period(ctx: WebContext) -> str:
    """How long a confirmation link works, in words: "7 days", "1 day", "12 hours"."""
    seconds = int(ctx.settings.links.confirm_max_age.total_seconds())
    days, hours = seconds // 86400, max(1, seconds // 3600)
    if days >= 1 and seconds % 86400 == 0:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _form_page(
    ctx: WebContext,
    request: Request,
    status: int = 200,
    error: str = "",
    email: str = "",
    name: str = "",
) -> Response:
    nonce, is_new = ctx.csrf.nonce_for(request)
    response = ctx.page(
        "subscribe.html.j2",
        status=status,
        csrf_token=ctx.csrf.token(FORM, nonce),
        error=error,
        email=email,
        name=name,
    )
    if is_new:
        ctx.csrf.set_cookie(response, nonce, request)
    return response


def subscribe_form(request: Request) -> Response:
    """GET /subscribe: the form."""
    return _form_page(context_of(request), request)


def _looks_like_an_address(text: str) -> bool:
    """Only obvious typos get an error; anything plausible gets the same answer as a real address."""
    local, at, domain = text.rpartition("@")
    return (
        bool(at and local and domain)
        and len(text) <= MAX_EMAIL_LENGTH
        and not any(c.isspace() for c in text)
    )


async def subscribe_submit(request: Request) -> Response:
    """POST /subscribe: check the form, answer "check your inbox", do the work in the background."""
    ctx = context_of(request)
    refused = rate_limited(ctx, ctx.subscribe_limiter, request)
    if refused is not None:
        return refused
    form = await request.form()
    email = str(form.get("email", "")).strip()
    name = str(form.get("name", ""))
    try:
        ctx.csrf.check(FORM, request, str(form.get(CSRF_FIELD, "")))
    except CsrfError as err:
        log.info("subscribe form refused from %s: %s", client_ip(request), err)
        message = "This form expired or your browser did not send its cookie. Please try again."
        return _form_page(ctx, request, 400, message, email, name)
    if not _looks_like_an_address(email):
        return _form_page(
            ctx,
            request,
            400,
            "Please enter your email address, such as name@example.org.",
            email,
            name,
        )
    try:
        # Checked here, not in the background: saying a name is refused reveals nothing.
        name = clean_name(name) or ""
    except InvalidNameError as err:
        return _form_page(ctx, request, 400, name_error(err), email, name)
    sent = ctx.page("subscribe_sent.html.j2", confirm_period=confirm_period(ctx))
    if str(form.get(HONEYPOT_FIELD, "")).strip():
        log.info("subscribe form from %s filled the honeypot; ignored", client_ip(request))
        return sent
    sent.background = BackgroundTask(register, ctx, email, name or None, client_ip(request))
    return sent


def name_error(err: InvalidNameError) -> str:
    """The form error for a refused name: what is wrong and where, as a sentence."""
    return f"Please check the name: it {err.problem}."


def register(ctx: WebContext, email: str, name: str | None, ip: str) -> None:
    """Add a pending subscriber (or find the pending one) and mail the confirmation link."""
    try:
        address = normalise_email(email)
        known = ctx.store.get(address)
        if known is None:
            known = ctx.store.add(
                address,
                name=name,
                status=SubscriberStatus.PENDING,
                source="web",
                source_detail="subscribe form",
                ip=ip,
            )
        elif known.status is not SubscriberStatus.PENDING:
            log.info("subscribe form for subscriber %s (%s): nothing to do", known.id, known.status)
            return
        send_confirmation(ctx, known)
    except AlreadySubscribedError as err:
        log.info("subscribe form for a suppressed address: %s", err.status)
    except SubscriberError as err:
        log.info("subscribe form refused: %s", err)
    except DeliveryError as err:
        log.error("the confirmation email could not be sent: %s", err)
    except NewsletterError as err:
        log.error("subscribing failed: %s", err)
    except Exception:  # a background task: nobody else would see it
        log.exception("subscribing failed")


def confirmation_message(ctx: WebContext, subscriber: Subscriber) -> OutgoingMessage:
    """The double opt-in email for ``subscriber`` with a fresh, expiring confirmation link."""
    settings = ctx.settings
    token = ctx.signer.sign(Purpose.CONFIRM, subscriber.id)
    values = {
        "name": subscriber.name,
        "confirm_url": settings.links.confirm_url(token),
        "confirm_period": confirm_period(ctx),
    }
    recipient = Recipient(
        subscriber_id=None,
        email=subscriber.email,
        name=subscriber.name,
        substitutions={},
        message_id=new_message_id(settings.sender.email),
    )
    return OutgoingMessage(
        subject=f"Please confirm your subscription to {settings.sender.name}",
        html=ctx.render("email/confirm.html.j2", **values),
        text=ctx.render("email/confirm.txt.j2", **values),
        sender_name=settings.sender.name,
        sender_email=settings.sender.email,
        reply_to=settings.sender.reply_to,
        recipients=(recipient,),
    )


def send_confirmation(ctx: WebContext, subscriber: Subscriber) -> None:
    """Mail the confirmation link through the configured transport."""
    message = confirmation_message(ctx, subscriber)
    with ctx.transport() as transport:
        results = transport.send_batch(message)
    for result in results:
        if not result.accepted:
            log.error(
                "the confirmation email to subscriber %s was refused: %s",
                subscriber.id,
                result.error,
            )
        else:
            log.info("confirmation email sent to subscriber %s", subscriber.id)


def confirm(request: Request) -> Response:
    """GET /confirm/{token}: pending → active, recording when and from which IP (CASL consent)."""
    ctx = context_of(request)
    invalid = (
        "This confirmation link is not valid or has expired. Subscribe again to get a new one."
    )
    try:
        subscriber_id = ctx.signer.verify(Purpose.CONFIRM, request.path_params["token"])
    except TokenError:
        return ctx.error_page(400, invalid)
    subscriber = ctx.store.get_by_id(subscriber_id)
    if subscriber is None or subscriber.status.is_suppressed:
        return ctx.error_page(400, invalid)
    already = subscriber.status is SubscriberStatus.ACTIVE
    if not already:
        ctx.store.confirm(subscriber_id, ip=client_ip(request))
        log.info("subscriber %s confirmed", subscriber_id)
    return ctx.page(
        "confirmed.html.j2",
        already=already,
        name=subscriber.name,
        preferences_url=ctx.settings.links.preferences_url(
            ctx.signer.sign(Purpose.PREFERENCES, subscriber_id)
        ),
    )
