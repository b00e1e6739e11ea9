"""The command group: every command loads lazily, has --help, and is documented."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
from click.testing import CliRunner

from newsletter.cli import LAZY_COMMANDS, main, top_command_names
from tests.conftest import REPO


def _all_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    with click.Context(main) as ctx:
        for name in main.list_commands(ctx):
            command = main.get_command(ctx, name)
            assert command is not None, name
            found.append((name, command))
            if isinstance(command, click.Group):
                for sub in command.list_commands(ctx):
                    found.append((f"{name} {sub}", command.commands[sub]))
    return found


def test_lazy_table_names_every_command_of_every_module() -> None:
    for module_name in set(LAZY_COMMANDS.values()):
        module = importlib.import_module(f"newsletter.cli.{module_name}")
        for command in module.COMMANDS:
            assert LAZY_COMMANDS.get(command.name or "") == module_name, command.name
    assert top_command_names() == sorted(LAZY_COMMANDS)


def test_every_command_has_help() -> None:
    for name, _command in _all_commands():
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_every_command_is_documented() -> None:
    docs = "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "docs").glob("*.md"))
    missing = [name for name, _ in _all_commands() if f"newsletter {name}" not in docs]
    assert not missing, f"commands missing from docs/: {missing}"


def test_help_does_not_load_the_heavy_modules() -> None:
    code = (
        "import sys; from newsletter.cli import main\n"
        "heavy = [m for m in ('newsletter.web.app', 'newsletter.schedule', 'newsletter.render')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_user_mistake_is_one_line_not_a_traceback(tmp_path) -> None:
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "send", "2021-01", "--yes"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "schedule.yaml: not found" in result.output
