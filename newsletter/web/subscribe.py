"""Double opt-in: ``/subscribe`` makes a pending subscriber and mails a link; ``/confirm/{token}`` activates.

The answer to a subscribe form never depends on whether the address is known, suppressed,
refused by the validator or over its daily confirmation limit (no address enumeration): the
work, and the email, happen in a background task after the same "check your inbox" page has
gone out. At most ``CONFIRMATIONS_PER_DAY`` confirmation emails go to one address a day, counted
in the database. The link opens a page with a button; only its POST confirms (mail scanners
follow links).
"""

from __future__ import annotations

import logging
import re
import traceback

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
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
from newsletter.store.confirmations import CONFIRMATIONS_PER_DAY, claim_confirmation
from newsletter.store.subscribers import AlreadySubscribedError, clean_name
from newsletter.tokens import Purpose
from newsletter.values.address import AddressError, normalise_address
from newsletter.web.pages import WebContext, context_of, rate_limited
from newsletter.web.security import CSRF_FIELD, CsrfError, client_ip
from newsletter.welcome import send_welcome

log = logging.getLogger("newsletter.web.subscribe")

FORM = "subscribe"
CONFIRM_FORM = "confirm"
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
    """Add a pending subscriber (or find the pending one) and mail the confirmation link.

    Logs say why and, where there is one, the subscriber id; never the address as typed.
    """
    try:
        known = _pending_subscriber(ctx, email, name, ip)
        if known is None:
            return
        if not claim_confirmation(ctx.database.engine, known.id):
            log.info(
                "subscribe form for subscriber %s: %d confirmation emails in the last day "
                "already, none sent",
                known.id,
                CONFIRMATIONS_PER_DAY,
            )
            return
        send_confirmation(ctx, known)
    except DeliveryError as err:
        log.error("the confirmation email could not be sent: %s", _without(str(err), email))
    except NewsletterError as err:
        log.error("subscribing failed: %s", _without(str(err), email))
    except Exception:  # a background task: nobody else would see it (SQL errors quote values)
        log.error("subscribing failed: %s", _without(traceback.format_exc(), email))


def _pending_subscriber(
    ctx: WebContext, email: str, name: str | None, ip: str
) -> Subscriber | None:
    """The pending subscriber to mail for ``email`` (added now if new); None when nobody is to be mailed."""
    try:
        address = normalise_address(email)
    except AddressError:
        log.info("subscribe form refused: the address did not pass validation")
        return None
    known = ctx.store.get(address)
    if known is None:
        try:
            return ctx.store.add(
                address,
                name=name,
                status=SubscriberStatus.PENDING,
                source="web",
                source_detail="subscribe form",
                ip=ip,
            )
        except AlreadySubscribedError as err:
            known = ctx.store.get(address)  # forgotten (None), or added by a post a moment ago
            if known is None:
                log.info("subscribe form for a forgotten address (%s): nothing to do", err.status)
                return None
        except SubscriberError:
            log.info("subscribe form refused: the address could not be added")
            return None
    if known.status is not SubscriberStatus.PENDING:
        log.info("subscribe form for subscriber %s (%s): nothing to do", known.id, known.status)
        return None
    return known


def _without(text: str, typed: str) -> str:
    """``text`` with the address taken out, as typed and as normalised (an error may quote either)."""
    try:
        spellings = {typed.strip(), normalise_address(typed)}
    except AddressError:
        spellings = {typed.strip()}
    for spelling in sorted(filter(None, spellings), key=len, reverse=True):
        text = re.sub(re.escape(spelling), "[address]", text, flags=re.IGNORECASE)
    return text


def confirmation_message(ctx: WebContext, subscriber: Subscriber) -> OutgoingMessage:
    """The double opt-in email for ``subscriber`` with a fresh, expiring confirmation link.

    It carries nothing the requester typed but the address itself (no name in greeting or To):
    anyone can type anyone's address, so the message must not carry their words to a stranger.
    """
    settings = ctx.settings
    token = ctx.signer.sign(Purpose.CONFIRM, subscriber.id)
    values = {
        "confirm_url": settings.links.confirm_url(token),
        "confirm_period": confirm_period(ctx),
    }
    recipient = Recipient(
        subscriber_id=None,
        email=subscriber.email,
        name=None,
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
                _without(str(result.error), subscriber.email),
            )
        else:
            log.info("confirmation email sent to subscriber %s", subscriber.id)


INVALID_CONFIRM = (
    "This confirmation link is not valid or has expired. Subscribe again to get a new one."
)


def _confirmable(ctx: WebContext, token: str) -> Subscriber | None:
    """The subscriber a confirmation token (unexpired, right purpose) names, unless suppressed or gone."""
    try:
        subscriber_id = ctx.signer.verify(Purpose.CONFIRM, token)
    except TokenError:
        return None
    subscriber = ctx.store.get_by_id(subscriber_id)
    if subscriber is None or subscriber.status.is_suppressed:
        return None
    return subscriber


def _confirm_page(
    ctx: WebContext, request: Request, status: int = 200, error: str = ""
) -> Response:
    """The page with the "Confirm" button, a form posting back to this same path."""
    nonce, is_new = ctx.csrf.nonce_for(request)
    response = ctx.page(
        "confirm.html.j2",
        status=status,
        error=error,
        csrf_token=ctx.csrf.token(CONFIRM_FORM, nonce),
        action=f"/confirm/{request.path_params['token']}",
    )
    if is_new:
        ctx.csrf.set_cookie(response, nonce, request)
    return response


def confirm_page(request: Request) -> Response:
    """GET (and HEAD) /confirm/{token}: the button only; mail scanners follow links, so nothing changes."""
    ctx = context_of(request)
    subscriber = _confirmable(ctx, request.path_params["token"])
    if subscriber is None:
        return ctx.error_page(400, INVALID_CONFIRM)
    if subscriber.status is SubscriberStatus.ACTIVE:
        return _confirmed_page(ctx, subscriber.id, already=True)
    return _confirm_page(ctx, request)


async def confirm(request: Request) -> Response:
    """POST /confirm/{token}: pending → active, recording when and from which IP (CASL consent)."""
    ctx = context_of(request)
    refused = rate_limited(ctx, ctx.form_limiter, request)
    if refused is not None:
        return refused
    form = await request.form()
    return await run_in_threadpool(_confirm, ctx, request, str(form.get(CSRF_FIELD, "")))


def _confirm(ctx: WebContext, request: Request, csrf: str) -> Response:
    """Check the token and the form, then activate the subscriber."""
    subscriber = _confirmable(ctx, request.path_params["token"])
    if subscriber is None:
        return ctx.error_page(400, INVALID_CONFIRM)
    try:
        ctx.csrf.check(CONFIRM_FORM, request, csrf)
    except CsrfError as err:
        log.info("confirmation form refused for subscriber %s: %s", subscriber.id, err)
        message = "This form expired or your browser did not send its cookie. Please try again."
        return _confirm_page(ctx, request, 400, message)
    already = subscriber.status is SubscriberStatus.ACTIVE
    confirmed = not already and ctx.store.confirm(subscriber.id, ip=client_ip(request))
    page = _confirmed_page(ctx, subscriber.id, already=already)
    if confirmed:
        log.info("subscriber %s confirmed", subscriber.id)
        # After the answer: the reader's page never waits for the mail server.
        page.background = BackgroundTask(_welcome, ctx, subscriber.id)
    return page


def _welcome(ctx: WebContext, subscriber_id: int) -> None:
    """The latest issue, in the reader's variant (``welcome`` in schedule.yaml); never fails the page."""
    try:
        outcome = send_welcome(
            ctx.settings,
            ctx.database,
            subscriber_id,
            transport=ctx.transport,
            signer=ctx.signer,
        )
    except Exception:  # the reader is subscribed whatever happens to the welcome copy
        log.exception("the welcome issue to subscriber %s failed", subscriber_id)
        return
    log.info("welcome issue for subscriber %s: %s", subscriber_id, outcome)


def _confirmed_page(ctx: WebContext, subscriber_id: int, *, already: bool) -> Response:
    """ "You are subscribed", with the reader's preferences link (no name: it was typed by anyone)."""
    preferences_token = ctx.signer.sign(Purpose.PREFERENCES, subscriber_id)
    return ctx.page(
        "confirmed.html.j2",
        already=already,
        preferences_url=ctx.settings.links.preferences_url(preferences_token),
    )
