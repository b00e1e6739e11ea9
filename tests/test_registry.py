"""The transport registry: names without imports, heavy libraries only when their transport is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.delivery import registry
from newsletter.errors import ConfigError

HEAVY = ("sendgrid", "python_http_client", "cryptography", "newsletter.delivery.sendgrid.transport")


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip())


def test_the_offered_names_come_from_the_registry() -> None:
    assert registry.names() == ("outbox", "smtp", "sendgrid")
    assert registry.names(selectable=False) == ("outbox", "smtp", "sendgrid", "memory")
    send = CliRunner().invoke(main, ["send", "--help"]).output
    assert "[outbox|smtp|sendgrid]" in send


def test_an_unknown_transport_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown transport 'pigeon': expected one of outbox"):
        registry.get_provider("pigeon")


def test_reading_the_settings_and_sending_to_the_outbox_load_no_provider_sdk(
    project: Path,
) -> None:
    code = (
        "from newsletter.config import load_settings\n"
        "from newsletter.delivery import get_transport\n"
        "from newsletter.models import OutgoingMessage, Recipient\n"
        f"s = load_settings({str(project)!r}, env={{}})\n"
        "r = Recipient(1, 'a@example.com', None, {}, '<1@example.org>', None)\n"
        "m = OutgoingMessage('Hi', None, 'Hello', 'N', 'n@example.org', None, (r,), '2026-01')\n"
        "with get_transport('outbox', s.delivery) as t: assert t.send_batch(m)[0].accepted\n"
    )
    assert loaded_after(code) == []
    assert loaded_after("from newsletter.cli import main; import newsletter.cli.send") == []


def test_each_declaring_module_is_light() -> None:
    code = "from newsletter.delivery import registry; registry.providers()"
    assert loaded_after(code) == []


def test_an_unknown_delivery_section_is_located(project: Path, clean_env: None) -> None:
    path = project / "schedule.yaml"
    path.write_text(path.read_text() + "  pigeon:\n    loft: roof\n")
    with pytest.raises(ConfigError, match=r"schedule.yaml:\d+: `delivery.pigeon`: unknown key"):
        load_settings(project, env={})
