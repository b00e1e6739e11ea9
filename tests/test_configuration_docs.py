"""The shipped schedule.yaml, its documentation and the scheduling docs agree."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import yaml

from newsletter.cli import command as top_command
from tests.conftest import REPO

SHIPPED = REPO / "schedule.yaml"
CONFIG_DOC = REPO / "docs" / "configuration.md"
SCHEDULING_DOC = REPO / "docs" / "scheduling.md"
DEPLOY_DOC = REPO / "docs" / "deploy-scheduler.md"


def _uncommented(text: str) -> str:
    """The file with commented-out keys (``# cron: …``) turned into real ones."""
    return re.sub(r"(?m)^(\s*)# (\w+: )", r"\1\2", text)


def key_paths(node: yaml.Node, prefix: str = "") -> Iterator[tuple[str, int]]:
    """Every key as ``section.key`` with its line."""
    assert isinstance(node, yaml.MappingNode)
    for key, value in node.value:
        path = f"{prefix}{key.value}"
        yield path, key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            yield from key_paths(value, f"{path}.")


def shipped_keys() -> list[tuple[str, int]]:
    node = yaml.compose(_uncommented(SHIPPED.read_text(encoding="utf-8")), Loader=yaml.SafeLoader)
    return list(key_paths(node))


def test_the_shipped_file_has_every_documented_section() -> None:
    paths = {path for path, _ in shipped_keys()}
    for expected in ("timezone", "send.day", "send.time", "send.cron", "send.misfire_grace"):
        assert expected in paths


def test_every_key_of_the_shipped_schedule_yaml_is_documented() -> None:
    doc = CONFIG_DOC.read_text(encoding="utf-8")
    missing = [path for path, _ in shipped_keys() if f"`{path}`" not in doc]
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_every_key_of_the_shipped_schedule_yaml_has_a_comment() -> None:
    """Each setting line explains itself (section headers such as ``send:`` excepted)."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    bare = []
    for path, number in shipped_keys():
        line = lines[number - 1]
        is_section = line.rstrip().endswith(":")
        if not is_section and " # " not in line.split(":", 1)[1] + " ":
            bare.append(f"schedule.yaml:{number}: {path}")
    assert not bare, f"keys without a comment: {bare}"


def test_every_environment_variable_is_documented() -> None:
    doc = CONFIG_DOC.read_text(encoding="utf-8")
    used: set[str] = set()
    for path in (REPO / "newsletter").rglob("*.py"):
        used.update(re.findall(r"\b(?:NEWSLETTER|SENDGRID)_[A-Z_]+[A-Z]\b", path.read_text()))
    used.update(re.findall(r"\b(?:NEWSLETTER|SENDGRID)_[A-Z_]+[A-Z]\b", SHIPPED.read_text()))
    assert used
    missing = sorted(name for name in used if f"`{name}`" not in doc)
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_the_scheduling_commands_and_options_are_documented() -> None:
    doc = SCHEDULING_DOC.read_text(encoding="utf-8") + DEPLOY_DOC.read_text(encoding="utf-8")
    subscribers = top_command("subscribers")
    assert isinstance(subscribers, click.Group)
    commands = {
        "newsletter schedule": top_command("schedule"),
        "newsletter scheduler": top_command("scheduler"),
        "newsletter subscribers sync": subscribers.commands["sync"],
    }
    for name, command in commands.items():
        assert name in doc, name
        for parameter in command.params:
            for option in getattr(parameter, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert option in doc, f"{name} {option}"


def test_the_systemd_unit_has_what_a_deployment_needs() -> None:
    unit = DEPLOY_DOC.read_text(encoding="utf-8").split("```ini", 1)[1].split("```", 1)[0]
    for setting in ("Restart=on-failure", "EnvironmentFile=", "WorkingDirectory=", "ExecStart="):
        assert setting in unit
    assert "newsletter scheduler" in unit
