"""schedule.yaml → Settings: the shipped file loads; every mistake names file, line and key."""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError


def test_shipped_schedule_loads(settings):
    assert settings.timezone.key == "America/Toronto"
    assert settings.send.day == "1st tue"
    assert settings.send.time == time(9, 0)
    assert settings.send.misfire_grace == timedelta(hours=6)
    assert settings.delivery.transport == "outbox"
    assert settings.database_url.startswith("sqlite:////")
    assert settings.database_url.endswith("subscribers/subscribers.db")


def _with(project: Path, old: str, new: str) -> Path:
    path = project / "schedule.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("day: 1st tue", "day: 6th tue", "`send.day`"),
        ('time: "09:00"', 'time: "25:00"', "`send.time`"),
        ("misfire_grace: 6h", "misfire_grace: soon", "`send.misfire_grace`"),
        ("transport: outbox", "transport: pigeon", "`delivery.transport`"),
        ("batch_size: 1000", "batch_size: 5000", "`delivery.sendgrid.batch_size`"),
        ("timezone: America/Toronto", "timezone: Mars/Base", "`timezone`"),
        ("  name: PPRNet Monthly", "  nmae: PPRNet Monthly", "`sender.nmae`: unknown key"),
        ("sandbox: false", "sandbox: maybe", "`delivery.sendgrid.sandbox`"),
        (
            "email: newsletter@example.org",
            "email: newsletter@example",  # the one address rule (values/address.py)
            "`sender.email`: expected an email address",
        ),
        (
            "reply_to: editor@example.org",
            "reply_to: editor",
            "`sender.reply_to`: expected an email",
        ),
        (
            "  name: PPRNet Monthly",
            '  name: "PPRNet\\u202eylhtnoM"',  # a right-to-left override: spoofs the From line
            "`sender.name`: the name contains a text-direction control, U+202E, at character 7",
        ),
    ],
)
def test_bad_value_names_file_line_and_key(project, old, new, expected):
    _with(project, old, new)
    with pytest.raises(ConfigError) as info:
        load_settings(project, env={})
    message = str(info.value)
    assert expected in message
    assert "schedule.yaml:" in message
    line = int(message.split("schedule.yaml:")[1].split(":")[0])
    assert (
        new.split(":")[0].strip() in (project / "schedule.yaml").read_text().splitlines()[line - 1]
    )


def test_unknown_top_level_key(project):
    path = project / "schedule.yaml"
    path.write_text(path.read_text() + "\nsned:\n  day: 1\n")
    with pytest.raises(ConfigError, match="`sned`: unknown key"):
        load_settings(project, env={})


def test_invalid_yaml_is_located(project):
    path = project / "schedule.yaml"
    path.write_text("timezone: [unclosed\n")
    with pytest.raises(ConfigError, match=r"schedule.yaml:\d+: not valid YAML"):
        load_settings(project, env={})


def test_yaml_nested_too_deeply_is_an_error_not_a_crash(project):
    path = project / "schedule.yaml"
    path.write_text(path.read_text() + "\nx: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError, match=r"schedule\.yaml: not valid YAML: nested too deeply"):
        load_settings(project, env={})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule\.yaml: not found"):
        load_settings(tmp_path, env={})


def test_environment_overrides_and_secrets_hidden(project):
    env = {
        "NEWSLETTER_DATABASE_URL": "sqlite:////tmp/elsewhere.db",
        "NEWSLETTER_SENDGRID_HOST": "http://127.0.0.1:9999",
        "SENDGRID_API_KEY": "SG.secret-value",
        "NEWSLETTER_SECRET_KEY": "k" * 32,
        "NEWSLETTER_SMTP_PASSWORD": "hunter2",
    }
    settings = load_settings(project, env=env)
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"
    assert settings.delivery.section("sendgrid").host == "http://127.0.0.1:9999"
    assert settings.delivery.section("sendgrid").api_key == "SG.secret-value"
    shown = repr(settings)
    for secret in ("SG.secret-value", "k" * 32, "hunter2"):
        assert secret not in shown


def test_cron_alternative(project):
    _with(project, '  # cron: "0 9 * * 2"', '  cron: "0 9 * * 2"')
    assert load_settings(project, env={}).send.cron == "0 9 * * 2"


@pytest.mark.parametrize("url", ["https://[::1", "https://:8080", "https://user@"])
def test_a_base_url_without_a_host_is_refused(project, url):
    path = project / "schedule.yaml"
    text = re.sub(r"(?m)^(\s*)base_url:.*$", rf'\1base_url: "{url}"', path.read_text(), count=1)
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"schedule\.yaml:\d+: `links\.base_url`: expected an http"
    ):
        load_settings(project, env={})
