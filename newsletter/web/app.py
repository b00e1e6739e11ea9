"""The public web app (``newsletter serve``): subscribe, confirm, unsubscribe, preferences, webhooks, archive.

``create_app(settings)`` wires one ``WebContext`` (database, link signer, CSRF, rate limits,
transport) into a Starlette app whose every error is a plain styled page, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.delivery import get_transport
from newsletter.delivery.base import Transport
from newsletter.store.database import Database
from newsletter.tokens import load_key, load_signer
from newsletter.values.month import is_month
from newsletter.web import preferences, subscribe, unsubscribe, webhooks
from newsletter.web.archive import ArchiveSite
from newsletter.web.pages import (
    WebContext,
    check_templates,
    context_of,
    template_environment,
)
from newsletter.web.security import (
    HSTS,
    SECURITY_HEADERS,
    AccessLog,
    BodyLimit,
    BodyTooLarge,
    CsrfProtect,
    RateLimit,
    RateLimiter,
    SecurityHeaders,
    redact_path,
)

log = logging.getLogger("newsletter.web")

SUBSCRIBE_LIMIT = RateLimit(limit=10, window=10 * 60)  # subscribe posts per IP per 10 minutes
FORM_LIMIT = RateLimit(limit=30, window=10 * 60)  # preference saves per IP per 10 minutes


def _site(request: Request) -> ArchiveSite:
    site: ArchiveSite = context_of(request).extra["archive"]
    return site


def archive_index(request: Request) -> Response:
    return HTMLResponse(_site(request).index_page())


def archive_topics(request: Request) -> Response:
    return HTMLResponse(_site(request).topics_page())


def archive_topic(request: Request) -> Response:
    page = _site(request).topic_page(request.path_params["slug"])
    if page is None:
        raise HTTPException(404)
    return HTMLResponse(page)


def archive_topic_feed(request: Request) -> Response:
    feed = _site(request).topic_feed(request.path_params["slug"])
    if feed is None:
        raise HTTPException(404)
    return Response(feed, media_type="application/atom+xml; charset=utf-8")


def archive_issue(request: Request) -> Response:
    month = request.path_params["month"]
    page = _site(request).issue_page(month) if is_month(month) else None
    if page is None:
        raise HTTPException(404)
    return HTMLResponse(page)


_REFERENCE_TYPES = {
    "references.ris": ("ris", "application/x-research-info-systems; charset=utf-8"),
    "references.bib": ("bib", "application/x-bibtex; charset=utf-8"),
}


def archive_references(request: Request) -> Response:
    month, name = request.path_params["month"], request.path_params["name"]
    kind, media_type = _REFERENCE_TYPES.get(name, ("", ""))
    text = _site(request).references(month, kind) if kind and is_month(month) else None
    if text is None:
        raise HTTPException(404)
    disposition = f'attachment; filename="{month}-{name}"'
    return Response(text, media_type=media_type, headers={"Content-Disposition": disposition})


def archive_search(request: Request) -> Response:
    return HTMLResponse(_site(request).search_page(request.query_params.get("q", "")))


def archive_search_index(request: Request) -> Response:
    return Response(_site(request).search_index(), media_type="application/json")


def archive_search_script(request: Request) -> Response:
    return Response(_site(request).search_script(), media_type="text/javascript; charset=utf-8")


def archive_feed(request: Request) -> Response:
    return Response(_site(request).feed(), media_type="application/atom+xml; charset=utf-8")


async def to_archive(request: Request) -> Response:
    # A fixed, relative target: nothing from the request ends up in a Location header.
    return RedirectResponse("/archive/", status_code=308)


async def home(request: Request) -> Response:
    return RedirectResponse("/subscribe", status_code=302)


async def health(request: Request) -> Response:
    return Response("ok\n", media_type="text/plain")


ROUTES = [
    Route("/", home),
    Route("/healthz", health),
    Route("/subscribe", subscribe.subscribe_form, methods=["GET"]),
    Route("/subscribe", subscribe.subscribe_submit, methods=["POST"]),
    Route("/confirm/{token}", subscribe.confirm_page, methods=["GET"]),
    Route("/confirm/{token}", subscribe.confirm, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe.unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe.unsubscribe_submit, methods=["POST"]),
    Route("/preferences/{token}", preferences.preferences_page, methods=["GET"]),
    Route("/preferences/{token}", preferences.preferences_submit, methods=["POST"]),
    Route("/webhooks/{provider}", webhooks.provider_webhook, methods=["POST"]),
    Route("/archive", to_archive),
    Route("/archive/", archive_index),
    Route("/archive/feed.xml", archive_feed),
    Route("/archive/topics/", archive_topics),
    Route("/archive/topics/{slug:str}/", archive_topic),
    Route("/archive/topics/{slug:str}/feed.xml", archive_topic_feed),
    Route("/archive/search/", archive_search),
    Route("/archive/search/index.json", archive_search_index),
    Route("/archive/search/search.js", archive_search_script),
    Route("/archive/{month}/", archive_issue),
    Route("/archive/{month}/{name:str}", archive_references),
]


def _ctx(request: Request) -> WebContext | None:
    ctx = getattr(request.app.state, "web", None)
    return ctx if isinstance(ctx, WebContext) else None


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405, 400 … as a styled page."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    ctx = _ctx(request)
    messages = {
        404: "There is nothing at this address.",
        405: "This page does not accept that kind of request.",
    }
    message = messages.get(status, "The request could not be handled.")
    if ctx is None:
        return HTMLResponse(
            f"<!doctype html><title>{status}</title><p>{message}</p>", status_code=status
        )
    return ctx.error_page(status, message)


async def too_large(request: Request, exc: Exception) -> Response:
    ctx = _ctx(request)
    message = "The form sent more data than this page accepts."
    return ctx.error_page(413, message) if ctx else HTMLResponse(message, status_code=413)


async def server_error(request: Request, exc: Exception) -> Response:
    """Any unexpected failure: logged with its traceback, shown as a plain page."""
    log.error("%s %s failed", request.method, redact_path(request.url.path), exc_info=exc)
    ctx = _ctx(request)
    message = "Sorry, this did not work. Please try again in a few minutes."
    response = ctx.error_page(500, message) if ctx else HTMLResponse(message, status_code=500)
    response.headers.update(SECURITY_HEADERS)  # this handler runs outside the middleware
    if request.url.scheme == "https":
        response.headers["strict-transport-security"] = HSTS
    return response


def _closing(database: Database) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A lifespan that closes the app's database when the server stops."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            database.close()

    return lifespan


def create_app(
    settings: Settings,
    *,
    subscribe_limit: RateLimit = SUBSCRIBE_LIMIT,
    form_limit: RateLimit = FORM_LIMIT,
    transport: Callable[[], Transport] | None = None,
) -> Starlette:
    """The public ASGI app for ``settings``; opens (and migrates) the database and loads the templates now."""
    database = Database.open(settings.database_url)
    templates = template_environment(Path(settings.templates_dir))
    check_templates(templates, Path(settings.templates_dir))
    ctx = WebContext(
        settings=settings,
        database=database,
        store=database.subscribers,
        signer=load_signer(settings),
        csrf=CsrfProtect(load_key(settings)),
        templates=templates,
        subscribe_limiter=RateLimiter(subscribe_limit),
        form_limiter=RateLimiter(form_limit),
        transport=transport
        or (lambda: get_transport(settings.delivery.transport, settings.delivery)),
    )
    ctx.extra["archive"] = ArchiveSite(settings, templates)
    app = Starlette(
        routes=ROUTES,
        lifespan=_closing(database),
        middleware=[
            Middleware(AccessLog),
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, webhook_limit=webhooks.MAX_BODY),
        ],
        exception_handlers={
            HTTPException: http_error,
            BodyTooLarge: too_large,
            Exception: server_error,
        },
    )
    app.router.redirect_slashes = False  # redirects built from the Host header are not ours
    app.state.web = ctx
    return app
