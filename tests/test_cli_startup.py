"""Start-up: ``newsletter --help`` loads no command module, and only rendering commands load mjml/premailer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from newsletter.cli import LAZY_COMMANDS, SUMMARIES, command

HEAVY = (
    "sqlalchemy",
    "mjml",
    "premailer",
    "yaml",
    "email_validator",
    "starlette",
    "uvicorn",
    "cryptography",
    "rich",
    "jinja2",
    "markdown_it",
    "newsletter.config",
    "newsletter.render",
    "newsletter.issues",
    "newsletter.send",
    "newsletter.batches",
)
RENDERING = ("mjml", "premailer")


def _loaded(*args: str, cwd: Path | None = None) -> dict[str, object]:
    """Run the CLI with ``args`` in a fresh interpreter; which heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from newsletter.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=60,
    )
    return {"modules": json.loads(done.stdout.strip().splitlines()[-1]), "out": done.stdout}


def test_summaries_are_the_commands_own_help() -> None:
    assert set(SUMMARIES) == set(LAZY_COMMANDS)
    for name, summary in SUMMARIES.items():
        real = command(name)
        for limit in (30, 45, 60, 75, 120):
            assert click.Command(name, help=summary).get_short_help_str(limit) == (
                real.get_short_help_str(limit)
            ), name


def test_help_loads_no_command_module() -> None:
    loaded = _loaded("--help")
    assert loaded["modules"] == []
    for name in LAZY_COMMANDS:
        assert f"  {name} " in str(loaded["out"])


@pytest.mark.parametrize(
    "args", [("report", "--help"), ("schedule", "--help"), ("subscribers", "list", "--help")]
)
def test_commands_that_render_nothing_load_no_render_pipeline(args: tuple[str, ...]) -> None:
    modules = _loaded(*args)["modules"]
    assert isinstance(modules, list)
    assert not set(RENDERING) & set(modules)


def test_listing_subscribers_loads_no_render_pipeline(project: Path) -> None:
    modules = _loaded("--project", str(project), "subscribers", "list")["modules"]
    assert isinstance(modules, list)
    assert "sqlalchemy" in modules
    assert not {*RENDERING, "newsletter.render"} & set(modules)


def test_build_loads_the_render_pipeline(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    modules = _loaded("--project", str(project), "build", "2021-01", "--out", str(out))["modules"]
    assert isinstance(modules, list)
    assert set(RENDERING) <= set(modules)


def test_report_loads_nothing_of_the_sending_side(project: Path) -> None:
    """``newsletter report`` reads the ledger: no send loop, no transports' batches, no rendering."""
    modules = _loaded("--project", str(project), "report", "2021-01")["modules"]
    assert isinstance(modules, list)
    assert "sqlalchemy" in modules  # it did read the database
    assert not {"newsletter.send", "newsletter.batches", "newsletter.render", *RENDERING} & set(
        modules
    )
