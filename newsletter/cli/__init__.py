"""The ``newsletter`` command: a thin click group.

Each command module parses options, calls the library and prints. This module is the one error
funnel: a ``NewsletterError`` becomes a one-line message and its exit code (1: the input or the
run failed; 2: usage or configuration), never a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from newsletter import __version__
from newsletter.config import Settings, load_settings
from newsletter.errors import NewsletterError


@dataclass
class Project:
    """What every command gets: the project folder, and its settings loaded on first use."""

    root: Path
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.root)
        return self._settings


pass_project = click.make_pass_decorator(Project)


class FunnelGroup(click.Group):
    """A click group that turns our errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=FunnelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    envvar="NEWSLETTER_PROJECT",
    help="The newsletter's folder (holds schedule.yaml, issues/, templates/).",
)
@click.pass_context
def main(ctx: click.Context, project_dir: Path) -> None:
    """Write, check, send and archive a monthly research-digest newsletter."""
    ctx.obj = Project(root=project_dir.resolve())


def _register() -> None:
    from newsletter.cli import issues, schedule, send, subscribers, web

    for module in (issues, subscribers, send, schedule, web):
        for command in module.COMMANDS:
            main.add_command(command)
    from newsletter.cli.sync import sync

    group = main.commands.get("subscribers")
    if isinstance(group, click.Group):
        group.add_command(sync)


_register()
