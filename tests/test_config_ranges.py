"""Numbers, durations and YAML tags in schedule.yaml: out of range or odd is a located error.

Each case was a traceback or a silently absurd value (a rate of 1e-300 messages a second, NaN
meaning "no pacing") before.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import MAX_DURATION, load_settings
from newsletter.errors import ConfigError


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)  # messages then name "schedule.yaml", as for a user in the folder


def _with(project: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in the project's schedule.yaml; the line it is on."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _refused(project: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(project, env={})
    return str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ("misfire_grace: 6h", "misfire_grace: 99999999999w", "send.misfire_grace", "at most 52w"),
        (
            "wait_for_ready: 7d",
            "wait_for_ready: 1000000000d",
            "send.wait_for_ready",
            "at most 366d",
        ),
        ("wait_for_ready: 7d", "wait_for_ready: 367d", "send.wait_for_ready", "at most 366d"),
        (
            "confirm_max_age: 7d",
            "confirm_max_age: 99999999999s",
            "links.confirm_max_age",
            "at most 31622400s",
        ),
        ("confirm_max_age: 7d", "confirm_max_age: 0h", "links.confirm_max_age", "longer than zero"),
        (
            "misfire_grace: 6h",
            "misfire_grace: " + "9" * 5000 + "h",
            "send.misfire_grace",
            "expected",
        ),
    ],
)
def test_huge_or_empty_durations(project, old, new, key, says):
    line = _with(project, old, new)
    message = _refused(project)
    assert message.startswith(f"schedule.yaml:{line}: `{key}`: "), message
    assert says in message


def test_the_longest_duration_is_accepted(project):
    _with(project, "wait_for_ready: 7d", "wait_for_ready: 366d")
    assert load_settings(project, env={}).send.wait_for_ready == MAX_DURATION == timedelta(366)


@pytest.mark.parametrize(
    "rate",
    ["1.0e-300", ".nan", ".NaN", ".inf", "-.inf", "-1", "0", "0.001", "10001", "1e400", "true"],
)
def test_smtp_rate_must_be_a_sane_finite_number(project, rate):
    line = _with(project, "rate: 20 ", f"rate: {rate} ")
    message = _refused(project)
    assert message.startswith(f"schedule.yaml:{line}: `delivery.smtp.rate`: expected "), message
    assert "from 0.01 to 10000" in message


@pytest.mark.parametrize(
    ("rate", "value"), [("0.01", 0.01), ("1000", 1000.0), ("10000", 10000.0), ("2.5", 2.5)]
)
def test_smtp_rate_within_range(project, rate, value):
    _with(project, "rate: 20 ", f"rate: {rate} ")
    assert load_settings(project, env={}).delivery.section("smtp").rate == value


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("port: 587 ", "port: .nan ", "delivery.smtp.port"),
        ("port: 587 ", "port: 1e400 ", "delivery.smtp.port"),
        ("port: 587 ", "port: true ", "delivery.smtp.port"),
        ("port: 587 ", "port: -587 ", "delivery.smtp.port"),
        ("port: 587 ", "port: 99999999999999999999999 ", "delivery.smtp.port"),
        ("batch_size: 1000", "batch_size: .inf", "delivery.sendgrid.batch_size"),
        ("batch_size: 1000", "batch_size: true", "delivery.sendgrid.batch_size"),
        ("batch_size: 1000", "batch_size: 0", "delivery.sendgrid.batch_size"),
        ("batch_size: 1000", "batch_size: 1000.0", "delivery.sendgrid.batch_size"),
        ('time: "09:00"', "time: 99999999999", "send.time"),
        ('time: "09:00"', "time: .nan", "send.time"),
        ("day: 1st tue", "day: .inf", "send.day"),
        ("day: 1st tue", "day: -1", "send.day"),
    ],
)
def test_other_numbers_out_of_range(project, old, new, key):
    line = _with(project, old, new)
    message = _refused(project)
    assert message.startswith(f"schedule.yaml:{line}: `{key}`: expected "), message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("timezone: America/Toronto", "timezone: !custom x", "timezone"),
        ("port: 587 ", "port: !custom 587 ", "delivery.smtp.port"),
        ("  name: PPRNet Monthly", "  name: !custom PPRNet Monthly", "sender.name"),
        ("sender:", "sender: !custom", "sender"),
        ("port: 587 ", "port: !!python/object:os.system echo ", "delivery.smtp.port"),
    ],
)
def test_a_custom_yaml_tag_is_refused_where_it_stands(project, old, new, key):
    line = _with(project, old, new)
    message = _refused(project)
    tag = new.split("!", 1)[1].split(" ")[0]
    assert message == (
        f"schedule.yaml:{line}: `{key}`: the YAML tag !{tag} is not understood here; "
        "remove it (write the plain value)"
    )


@pytest.mark.parametrize(
    ("new", "says"),
    [
        ("port: !!int abc ", "invalid literal for int()"),
        ("port: !!float x ", "could not convert string to float"),
    ],
)
def test_a_yaml_type_tag_that_does_not_fit_is_refused(project, new, says):
    line = _with(project, "port: 587 ", new)
    message = _refused(project)
    assert message.startswith(f"schedule.yaml:{line}: `delivery.smtp.port`: not a valid value: ")
    assert says in message and "\n" not in message


def test_standard_tags_still_work(project):
    _with(project, "port: 587 ", "port: !!int 2525 ")
    assert load_settings(project, env={}).delivery.section("smtp").port == 2525


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("misfire_grace: 6h", "misfire_grace: 99999999999w"),
        ("rate: 20 ", "rate: 1.0e-300 "),
        ("timezone: America/Toronto", "timezone: !custom x"),
    ],
)
def test_through_the_cli_one_line_and_exit_2(project, clean_env, old, new):
    line = _with(project, old, new)
    result = CliRunner().invoke(main, ["--project", str(project), "schedule"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert f":{line}: `" in lines[0]
