"""The ``newsletter`` command: a thin click group.

Each command module parses options, calls the library and prints. This module is the one error
funnel: a ``NewsletterError`` becomes a one-line message and its exit code (1: the input or the
run failed; 2: usage or configuration), never a traceback. A SQLAlchemy error that got past the
store's own translation (``newsletter.store.failures``) gets the same treatment, as a
``StoreError`` naming the database.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from newsletter import __version__
from newsletter.errors import ConfigError, NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.store.database import Database


@dataclass
class Project:
    """What every command gets: the project folder; its settings and database opened on first use.

    The database is opened once per process and closed when the command's context closes
    (``ctx.call_on_close``), so library calls receive an open ``Database``, never a URL.
    """

    root: Path
    searched: bool = False  # looked for from the working folder up, not given by --project
    _settings: Settings | None = field(default=None, repr=False)
    _database: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from newsletter.config import load_settings  # YAML and the providers on first use

            if self.searched and not (self.root / SETTINGS_FILE).is_file():
                raise ConfigError(
                    f"{SETTINGS_FILE}: not found in {self.root} or any folder above it; run the "
                    "command inside the newsletter's folder or pass --project DIR"
                )

            self._settings = load_settings(self.root)
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            from newsletter.store.database import Database  # SQLAlchemy only for commands using it

            self._database = Database.open(self.settings.database_url)
            click.get_current_context().find_root().call_on_close(self._close_database)
        return self._database

    def _close_database(self) -> None:
        if self._database is not None:
            self._database.close()
            self._database = None


pass_project = click.make_pass_decorator(Project)

SETTINGS_FILE = "schedule.yaml"  # newsletter.config's name for it, without importing YAML here


def find_project(start: Path) -> Path | None:
    """The nearest folder from ``start`` up that holds a schedule.yaml (as git finds .git), or None."""
    for folder in (start, *start.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    return None


# Each command's module, imported only when that command runs: `newsletter build` need not load
# the web app, the scheduler or SQLAlchemy's dialects.
LAZY_COMMANDS = {
    "build": "issues",
    "check": "issues",
    "preview": "issues",
    "new": "issues",
    "subscribers": "subscribers",
    "send": "send",
    "report": "report",
    "schedule": "schedule",
    "scheduler": "schedule",
    "serve": "web",
    "archive": "web",
    "cite": "doi",
    "doi": "doi",
}

# What `newsletter --help` says of each command, so that listing them imports none of them
# (tests/test_cli_startup.py checks each against the command's own help).
SUMMARIES = {
    "archive": "Write the archive of sent issues (pages, topic pages, Atom feed, references) "
    "as static files.",
    "build": "Render ISSUE into email.html, email.txt, email.mjml and email.eml "
    "(a sample reader's copy).",
    "check": "Check ISSUE files, the emails they render to and their DOIs; "
    "exit 1 when there is an error.",
    "cite": "Print the formatted reference of DOI, from its Crossref record "
    "(stored in issues/.metadata/).",
    "doi": "Keep the issues' DOI records (issues/.metadata/) up to date.",
    "new": "Write a draft issue issues/MONTH.md: front matter and one article skeleton per DOI.",
    "preview": "Serve a live preview of ISSUE on 127.0.0.1: desktop and phone widths, text, checks.",
    "report": "The send ledger of ISSUE: counts by status, when, transport, "
    "unconfirmed/failed addresses.",
    "schedule": "List the next send times (local and UTC), the issue each sends, "
    "and whether it is ready.",
    "scheduler": "Run in the foreground and send each month's issue at its send time "
    "(SIGTERM stops it).",
    "send": "Send ISSUE to every active subscriber (once: a sent issue is never sent again).",
    "serve": "Run the public web app: subscribe, confirm, unsubscribe, preferences, webhooks, "
    "archive.",
    "subscribers": "Manage the subscriber list: add, remove, import, export, list, show, stats, "
    "and sync with the transport's suppression lists.",
}


class SuggestingGroup(click.Group):
    """A click group that answers a mistyped command with the nearest names ("Did you mean …?")."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if ctx.resilient_parsing or name.startswith("-") or self.get_command(ctx, name):
            return super().resolve_command(ctx, args)
        raise click.UsageError(unknown_command(name, self.list_commands(ctx)), ctx)


def unknown_command(name: str, known: list[str]) -> str:
    """``No such command 'sned'. Did you mean 'send'?`` (the hint only when one is close)."""
    close = difflib.get_close_matches(name, known, n=3)
    message = f"No such command {name!r}."
    if not close:
        return message
    return f"{message} Did you mean {' or '.join(repr(match) for match in close)}?"


class FunnelGroup(SuggestingGroup):
    """A click group that turns our errors into one-line messages and exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``SUMMARIES``: ``--help`` loads no command module."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if loaded.hidden:
                    continue
                rows.append((name, loaded.get_short_help_str(limit)))
            else:
                stand_in = click.Command(name, help=SUMMARIES[name])
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self._load(LAZY_COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"newsletter.cli.{module_name}")
        for loaded in module.COMMANDS:
            self.add_command(loaded)
        if module_name == "subscribers":
            from newsletter.cli.sync import sync

            module.subscribers.add_command(sync)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            _fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as err:
            mapped = _database_failure(ctx, err)
            if mapped is None:
                raise
            _fail(mapped)


def _fail(err: NewsletterError) -> NoReturn:
    click.secho(f"error: {err}", fg="red", err=True)
    sys.exit(err.exit_code)


def _database_failure(ctx: click.Context, err: Exception) -> NewsletterError | None:
    """``err`` as a ``StoreError`` if it is a SQLAlchemy error, else None.

    SQLAlchemy is not imported for commands that do not use the database, and none of its errors
    can arise before it is imported: look it up instead of importing it.
    """
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(err, sa_exc.SQLAlchemyError):
        return None
    from newsletter.store.failures import any_store_error

    project = ctx.find_object(Project)
    settings = project._settings if project is not None else None
    url = settings.database_url if settings is not None else None
    return any_store_error(err, url)


@click.group(cls=FunnelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="NEWSLETTER_PROJECT",
    help="The newsletter's folder (holds schedule.yaml, issues/, templates/). Default: the "
    "nearest folder holding a schedule.yaml, from the working folder up.",
)
@click.pass_context
def main(ctx: click.Context, project_dir: Path | None) -> None:
    """Write, check, send and archive a monthly research-digest newsletter.

    \b
    Examples:
      newsletter check 2021-01
      newsletter send 2021-01 --test-to editor@example.org
      newsletter --project ~/pprnet schedule
    """
    if project_dir is not None:
        ctx.obj = Project(root=project_dir.resolve())
        return
    here = Path.cwd()
    found = find_project(here)
    ctx.obj = Project(root=found or here, searched=True)


def top_command_names() -> list[str]:
    """The names ``newsletter --help`` lists."""
    with click.Context(main) as ctx:
        return main.list_commands(ctx)


def command(name: str) -> click.Command:
    """The top-level command ``name``, loaded if need be (for tests and docs checks)."""
    with click.Context(main) as ctx:
        found = main.get_command(ctx, name)
    if found is None:
        raise KeyError(name)
    return found
