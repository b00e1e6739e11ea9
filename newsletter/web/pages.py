"""What every route of the public site shares: the ``WebContext`` and rendering pages from ``templates/web``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.config import Settings
from newsletter.delivery.base import Transport
from newsletter.errors import ConfigError, RenderError
from newsletter.render.jinja import new_environment
from newsletter.store.database import Database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import LinkSigner
from newsletter.web.security import CsrfProtect, RateLimiter, client_ip, rate_key, redact_path

log = logging.getLogger("newsletter.web")

ERROR_TITLES = {
    400: "This link or form did not work",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "Too much data",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Not available",
}


def template_environment(templates_dir: Path) -> Environment:
    """Jinja for ``templates/web`` pages and the ``templates/email/confirm`` messages."""
    return new_environment(templates_dir)


TEMPLATES = (
    "web/base.html.j2",
    "web/error.html.j2",
    "web/subscribe.html.j2",
    "web/subscribe_sent.html.j2",
    "web/confirm.html.j2",
    "web/confirmed.html.j2",
    "web/unsubscribe.html.j2",
    "web/unsubscribed.html.j2",
    "web/preferences.html.j2",
    "web/archive_index.html.j2",
    "web/archive_topics.html.j2",
    "web/archive_topic.html.j2",
    "web/archive_issue.html.j2",
    "web/archive_search.html.j2",
    "email/confirm.txt.j2",
    "email/confirm.html.j2",
)


# Served and exported as they are, never rendered (the archive's search script).
STATIC_FILES = ("web/archive_search.js",)


def check_templates(env: Environment, templates_dir: Path) -> None:
    """Load every template the app uses now, so a missing or broken one stops the start, not a visitor."""
    for name in STATIC_FILES:
        if not (templates_dir / name).is_file():
            raise ConfigError(
                f"{templates_dir / name}: not found; the web app needs the templates/web/ files "
                "of the newsletter repository"
            )
    for name in TEMPLATES:
        try:
            env.get_template(name)
        except TemplateNotFound as err:
            raise ConfigError(
                f"{templates_dir / name}: not found; the web app needs the templates/web/ and "
                "templates/email/confirm.* files of the newsletter repository"
            ) from err
        except TemplateSyntaxError as err:
            raise ConfigError(
                f"{err.filename or templates_dir / name}:{err.lineno}: {err.message}"
            ) from err


def common_values(settings: Settings) -> dict[str, Any]:
    """Values every template may use."""
    return {
        "site_name": settings.sender.name,
        "base_url": settings.links.base_url,
        "archive_url": settings.links.archive_url,
        "postal_address": settings.sender.postal_address,
        "lang": settings.site.lang,
        "site_description": settings.site.description,
    }


def render(env: Environment, settings: Settings, template: str, **values: Any) -> str:
    """Render a template; a broken template is a ``RenderError`` naming it."""
    try:
        return env.get_template(template).render({**common_values(settings), **values})
    except TemplateError as err:
        raise RenderError(f"templates/{template}: {err}") from err


@dataclass
class WebContext:
    """The app's state, made once in ``create_app`` and handed to each route through ``app.state``."""

    settings: Settings
    database: Database
    store: SubscriberStore
    signer: LinkSigner
    csrf: CsrfProtect
    templates: Environment
    subscribe_limiter: RateLimiter
    form_limiter: RateLimiter
    transport: Callable[[], Transport]  # the configured transport, made anew for each email
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self, template: str, **values: Any) -> str:
        return render(self.templates, self.settings, template, **values)

    def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.render(f"web/{template}", **values), status_code=status)

    def error_page(self, status: int, message: str, **values: Any) -> HTMLResponse:
        """A plain styled error page: a title, one sentence, and a way on. Never a traceback."""
        title = ERROR_TITLES.get(status, "Something went wrong")
        try:
            body = self.render(
                "web/error.html.j2", status=status, title=title, message=message, **values
            )
        except RenderError:
            log.exception("the error page template failed")
            body = f"<!doctype html><title>{status}</title><h1>{title}</h1>"
        return HTMLResponse(body, status_code=status)


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


def rate_limited(ctx: WebContext, limiter: RateLimiter, request: Request) -> HTMLResponse | None:
    """A 429 page when this IP (IPv6: its /64) went over ``limiter``'s rule, else None."""
    wait = limiter.hit(rate_key(client_ip(request)))
    if wait is None:
        return None
    log.warning(
        "rate limit: %s sent too many %s %s",
        client_ip(request),
        request.method,
        redact_path(request.url.path),
    )
    response = ctx.error_page(
        429,
        "You have sent this form many times in a short while. Please wait a few minutes and try again.",
    )
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response
