"""The Jinja2 environment of the email templates: autoescaped HTML/MJML, strict undefined names."""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from markupsafe import Markup

from newsletter import markdown
from newsletter.errors import RenderError
from newsletter.render.source import source_line
from newsletter.values.doi import doi_url
from newsletter.values.month import first_day

TEXT_SUFFIX = ".txt.j2"


# Escape everything except the plain-text templates: HTML escaping has no place in text.
_AUTOESCAPE = select_autoescape(
    enabled_extensions=("html", "mjml", "html.j2", "mjml.j2"),
    disabled_extensions=(TEXT_SUFFIX.lstrip("."),),
    default_for_string=True,
    default=True,
)


def markdown_filter(text: str) -> Markup:
    """Block Markdown → HTML; safe because the shared parser escapes everything and drops raw HTML."""
    return Markup(markdown.to_html(text))  # noqa: S704 - markdown-it escapes all text


def inline_markdown_filter(text: str) -> Markup:
    """One line of inline Markdown → HTML without a wrapping paragraph."""
    return Markup(markdown.inline_to_html(text))  # noqa: S704 - markdown-it escapes all text


def month_name(month: str) -> str:
    """``"2021-01"`` → ``"January 2021"``."""
    return first_day(month).strftime("%B %Y")


def new_environment(templates_dir: Path, *, auto_reload: bool = False) -> Environment:
    """A Jinja environment for ``templates_dir``: autoescaped but for ``*.txt.j2``, strict, our filters.

    Shared by the email renderer and the web app so both escape and format alike.
    """
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=_AUTOESCAPE,  # noqa: S701 - on for everything but *.txt.j2
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=auto_reload,
    )
    env.filters["markdown"] = markdown_filter
    env.filters["inline_markdown"] = inline_markdown_filter
    env.filters["doi_url"] = doi_url
    env.filters["month_name"] = month_name
    env.filters["source_line"] = source_line
    return env


@functools.lru_cache(maxsize=16)
def environment(templates_dir: Path) -> Environment:
    """One environment per templates folder; ``auto_reload`` picks up edits (the preview needs it)."""
    return new_environment(templates_dir, auto_reload=True)


def render_template(templates_dir: Path, name: str, context: dict[str, object]) -> str:
    """Render ``templates_dir/name``; any template mistake becomes a located ``RenderError``."""
    try:
        template = environment(templates_dir.resolve()).get_template(name)
        return template.render(context)
    except TemplateNotFound as err:
        raise RenderError(f"{templates_dir / name}: template not found: {err.name}") from err
    except TemplateError as err:
        raise RenderError(f"{_location(err, templates_dir / name)}: template error: {err}") from err


def _location(err: TemplateError, fallback: Path) -> str:
    """``file:line`` of a template error: from a syntax error, else from the template's frame."""
    if isinstance(err, TemplateSyntaxError):
        return f"{err.filename or fallback}:{err.lineno}"
    tb = err.__traceback__
    where = str(fallback)
    while tb is not None:  # jinja rewrites frames so they point into the template source
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where
