"""The transport registry: names without imports, heavy libraries only when their transport is used."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.delivery import registry
from newsletter.delivery.hooks import ListReport, SyncReport
from newsletter.delivery.memory import MemoryTransport
from newsletter.delivery.registry import Provider
from newsletter.errors import ConfigError, TemporaryDeliveryError
from newsletter.monthly import _pull_suppressions
from tests.dbkit import db

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


PULLED: list[str] = []


def fake_pull(settings: Settings, store: object, *, progress: object = None) -> SyncReport:
    """A toy provider's suppression hook: records that the scheduler called it."""
    PULLED.append(settings.delivery.transport)
    return SyncReport((ListReport("toy list", fetched=1),))


def failing_pull(settings: Settings, store: object, *, progress: object = None) -> SyncReport:
    raise TemporaryDeliveryError("the toy list is down")


@pytest.mark.parametrize(("hook", "outcome"), [("fake_pull", None), ("failing_pull", "waiting")])
def test_the_scheduler_pulls_suppressions_through_the_hook_of_any_provider(
    settings: Settings, hook: str, outcome: str | None
) -> None:
    """No `if transport == "sendgrid"`: a registered provider's hook runs before its send."""
    registry.register(Provider("toy", MemoryTransport, suppressions=f"tests.test_registry:{hook}"))
    try:
        toy = dataclasses.replace(
            settings, delivery=dataclasses.replace(settings.delivery, transport="toy")
        )
        PULLED.clear()
        decision = _pull_suppressions(toy, db(toy), "2021-01")
    finally:
        registry.unregister("toy")
    if outcome is None:
        assert decision is None and PULLED == ["toy"]
    else:
        assert decision is not None and decision.outcome == outcome
        assert "toy's suppressions could not be pulled before sending" in decision.reason
    plain = _pull_suppressions(settings, db(settings), "2021-01")  # outbox: no hook, no pull
    assert plain is None


def test_serve_notes_a_missing_webhook_key_and_refuses_a_broken_one(
    project: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsletter.cli.web import check_webhooks

    check_webhooks(load_settings(project, env={}))
    note = capsys.readouterr().err
    assert (
        "note: NEWSLETTER_SENDGRID_WEBHOOK_KEY is not set; /webhooks/sendgrid answers 503" in note
    )
    broken = load_settings(project, env={"NEWSLETTER_SENDGRID_WEBHOOK_KEY": "bm90IGEga2V5"})
    with pytest.raises(ConfigError, match="NEWSLETTER_SENDGRID_WEBHOOK_KEY: not a base64 DER"):
        check_webhooks(broken)
