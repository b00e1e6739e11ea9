"""``newsletter serve`` (the public web app under uvicorn) and ``newsletter archive`` (the archive as static files)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from newsletter.cli import Project, pass_project
from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.values.month import is_month


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    envvar="FORWARDED_ALLOW_IPS",
    help="Proxies trusted to set X-Forwarded-For/-Proto (comma-separated, or '*').",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log (one access line per request at info).",
)
@click.option(
    "--allow-no-mail",
    is_flag=True,
    help="Start even though the transport lacks its credentials (confirmation emails will fail).",
)
@pass_project
def serve(
    project: Project,
    host: str,
    port: int,
    forwarded_allow_ips: str,
    log_level: str,
    allow_no_mail: bool,
) -> None:
    """Run the public web app: subscribe, confirm, unsubscribe, preferences, webhooks, archive.

    \b
    Examples:
      newsletter serve
      newsletter serve --host 0.0.0.0 --port 8000 --forwarded-allow-ips 10.0.0.2
      newsletter serve --allow-no-mail --log-level debug
    """
    import uvicorn

    from newsletter.web.app import create_app

    settings = project.settings
    configure_logging(log_level)
    check_transport(settings, allow_no_mail)
    app = create_app(settings)  # configuration mistakes stop here, before a port is taken
    check_webhooks(settings)
    click.echo(f"serving {settings.links.base_url} on http://{host}:{port} (Ctrl-C stops)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        access_log=False,  # our own access log leaves the link tokens out
        log_config=None,  # uvicorn's lines go through our handler, and its token filter, too
        log_level=log_level,
    )


def configure_logging(level: str) -> None:
    """One stderr handler for every logger (uvicorn's too) whose filter takes link tokens out."""
    from newsletter.web.security import RedactTokens

    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())


def check_webhooks(settings: Settings) -> None:
    """Refuse an unusable webhook key (``ConfigError``); say which webhooks lack one and answer 503."""
    from newsletter.delivery.registry import providers

    for provider in providers():
        hook = provider.webhook_hook()
        note = hook.startup_note(settings) if hook is not None else None
        if note:
            click.echo(f"note: {note}", err=True)


def check_transport(settings: Settings, allow_no_mail: bool) -> None:
    """Refuse to start when the transport lacks credentials, as every confirmation would fail quietly."""
    from newsletter.delivery import get_transport

    try:
        get_transport(settings.delivery.transport, settings.delivery)  # checks, opens nothing
    except ConfigError as err:
        if not allow_no_mail:
            raise ConfigError(
                f"serve: confirmation emails cannot be sent: {err} "
                "(or pass --allow-no-mail to start without them)"
            ) from err
        logging.getLogger("newsletter.web").warning(
            "starting without email (--allow-no-mail): confirmation emails will fail: %s", err
        )


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the site into (default: build/archive). Replaced whole.",
)
@pass_project
def archive(project: Project, out_dir: Path | None) -> None:
    """Write the archive of sent issues (pages, topic pages, Atom feed, references) as static files.

    \b
    Examples:
      newsletter archive
      newsletter archive --out /var/www/newsletter-archive
    """
    from newsletter.web.archive import export_static

    settings = project.settings
    target = out_dir if out_dir is not None else settings.build_dir / "archive"
    written = export_static(settings, target)
    issues = sum(1 for path in written if is_month(path.parent.name) and path.name == "index.html")
    click.echo(f"wrote {len(written)} files ({issues} issues) to {target}")


COMMANDS: list[click.Command] = [serve, archive]
