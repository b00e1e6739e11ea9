"""The transport contract, once, for every transport: memory, outbox, SMTP (aiosmtpd), SendGrid (stand-in).

Each transport gets a small harness: how to make it against its peer, how to read back what the
peer received (as the reader's mailbox would show it) and how to make the peer refuse the next
batch. A new provider adds one entry to ``HARNESSES``; ``test_every_transport_has_a_harness``
fails until it does. The toy ``jsonl`` transport of docs/adding-a-transport.md is registered at
run time through the public registry and runs through the same suite, proving the recipe.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.delivery import registry
from newsletter.delivery.base import DeliveryResult, Transport, split_batches
from newsletter.delivery.memory import MemoryTransport
from newsletter.delivery.outbox import OutboxSettings, OutboxTransport
from newsletter.delivery.registry import Provider
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import SendGridTransport
from newsletter.delivery.smtp import SmtpSettings, SmtpTransport
from newsletter.errors import PermanentDeliveryError, TemporaryDeliveryError
from newsletter.mime import build_message
from newsletter.models import OutgoingMessage, Placeholder
from tests.peers.fixtures import make_message
from tests.peers.sendgrid_server import Fault, SendGridServer
from tests.peers.smtp_server import SmtpServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-a-transport.md"
UNBUILDABLE = "Mallory\r\nBcc: everyone@example.com"  # a name from before the name rule


@dataclass(frozen=True)
class Copy:
    """One delivered message as its reader would see it."""

    to: str
    subject: str
    text: str
    html: str | None
    headers: Mapping[str, str]  # at least Message-ID, List-Unsubscribe, List-Unsubscribe-Post


@dataclass
class Harness:
    """One transport against its peer: the transport, what arrived, and a way to refuse a batch."""

    transport: Transport
    delivered: Callable[[], list[Copy]]
    refuse_next_batch: Callable[[], None]


def copy_of(mail: EmailMessage) -> Copy:
    """A parsed RFC 5322 message as a ``Copy``."""
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    return Copy(
        to=mail["To"].addresses[0].addr_spec,
        subject=str(mail["Subject"]),
        text=text.get_content(),  # type: ignore[attr-defined]
        html=html.get_content() if html is not None else None,  # type: ignore[attr-defined]
        headers={name: str(value) for name, value in mail.items()},
    )


# --- one harness per transport -------------------------------------------------------------------


@contextmanager
def memory_harness(tmp_path: Path) -> Iterator[Harness]:
    transport = MemoryTransport()

    def delivered() -> list[Copy]:  # what the outbox or SMTP would have built from the record
        return [copy_of(build_message(m, r)) for m, r in transport.delivered]

    def refuse() -> None:
        transport.fail_next(TemporaryDeliveryError("told to fail"))

    yield Harness(transport, delivered, refuse)


@contextmanager
def outbox_harness(tmp_path: Path) -> Iterator[Harness]:
    box = tmp_path / "outbox"

    def delivered() -> list[Copy]:
        if not (box / "new").is_dir():
            return []
        folder = mailbox.Maildir(box, create=False)
        return [copy_of(_parse(folder.get_bytes(key))) for key in sorted(folder.keys())]

    def refuse() -> None:  # new/ is a file now: no message can be moved into it
        transport.open()
        (box / "new").rmdir()
        (box / "new").write_text("not a folder")

    transport = OutboxTransport(OutboxSettings(box))
    yield Harness(transport, delivered, refuse)


@contextmanager
def smtp_harness(tmp_path: Path) -> Iterator[Harness]:
    with SmtpServer() as server:
        settings = SmtpSettings(
            host="127.0.0.1", port=server.port, security="none", username=None, rate=1000.0
        )

        def delivered() -> list[Copy]:
            return [copy_of(received.message) for received in server.messages]

        def refuse() -> None:  # as a real server would: on every connection of the pool
            server.mail_replies.extend(["550 5.7.1 Sender address rejected"] * 3)

        yield Harness(SmtpTransport(settings), delivered, refuse)


@contextmanager
def sendgrid_harness(tmp_path: Path) -> Iterator[Harness]:
    with SendGridServer() as server:
        settings = SendGridSettings(
            host=server.url, batch_size=1000, sandbox=False, api_key=server.api_key
        )

        def delivered() -> list[Copy]:  # SendGrid fills each personalization's substitutions
            return [_sendgrid_copy(body, p) for body, p in server.personalizations()]

        def refuse() -> None:
            server.inject(Fault(status=400, body={"errors": [{"message": "bad request"}]}))

        yield Harness(SendGridTransport(settings, sleep=lambda _: None), delivered, refuse)


def _sendgrid_copy(body: dict[str, Any], personalization: dict[str, Any]) -> Copy:
    subs = personalization.get("substitutions", {})

    def fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace(key, value)
        return text

    content = {part["type"]: part["value"] for part in body["content"]}
    return Copy(
        to=personalization["to"][0]["email"],
        subject=body["subject"],
        text=fill(content["text/plain"]),
        html=fill(content["text/html"]) if "text/html" in content else None,
        headers={**body.get("headers", {}), **personalization["headers"]},
    )


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- the toy transport of docs/adding-a-transport.md, loaded from the page itself -----------------


def _toy_from_the_docs() -> types.ModuleType:
    """The ``jsonl`` module exactly as docs/adding-a-transport.md shows it (first python block)."""
    source = DOC.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("jsonl_from_the_docs")
    sys.modules[module.__name__] = module  # dataclasses look the module up while building
    exec(compile(source, str(DOC), "exec"), module.__dict__)
    return module


TOY = _toy_from_the_docs()
JSONL: Provider = TOY.PROVIDER


@contextmanager
def jsonl_harness(tmp_path: Path) -> Iterator[Harness]:
    registry.register(JSONL)
    try:
        settings = load_settings(
            _project_with(tmp_path, "delivery:\n  jsonl:\n    path: sent.jsonl\n")
        )
        path = settings.delivery.section("jsonl").path  # type: ignore[attr-defined]

        def delivered() -> list[Copy]:
            if not path.is_file():
                return []
            return [Copy(**json.loads(line)) for line in path.read_text().splitlines()]

        def refuse() -> None:
            path.mkdir()  # a folder where the file should be: nothing can be appended

        yield Harness(registry.get_transport("jsonl", settings.delivery), delivered, refuse)
    finally:
        registry.unregister("jsonl")


def _project_with(tmp_path: Path, delivery: str) -> Path:
    """A minimal project folder whose schedule.yaml ends with ``delivery``."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "schedule.yaml").write_text(
        "sender:\n  name: Test\n  email: t@example.org\n  postal_address: Somewhere 1\n"
        "send: {}\nlinks:\n  base_url: https://n.example.org\n" + delivery
    )
    return root


HARNESSES: dict[str, Callable[[Path], Any]] = {
    "memory": memory_harness,
    "outbox": outbox_harness,
    "smtp": smtp_harness,
    "sendgrid": sendgrid_harness,
    "jsonl": jsonl_harness,  # the toy of docs/adding-a-transport.md
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with HARNESSES[request.param](tmp_path) as made:
        yield made


def send(transport: Transport, message: OutgoingMessage) -> list[DeliveryResult]:
    """Deliver ``message`` in batches of the transport's ``max_batch``, as a send run does."""
    results: list[DeliveryResult] = []
    with transport:
        for batch in split_batches(message, transport.max_batch):
            results += transport.send_batch(batch)
    return results


# --- the contract ------------------------------------------------------------------------------


def test_every_transport_has_a_harness() -> None:
    """A provider added to the registry fails here until its harness joins the suite."""
    assert set(registry.names(selectable=False)) <= set(HARNESSES)


def test_one_result_per_recipient_and_one_copy_each(harness: Harness) -> None:
    message = make_message(5)
    results = send(harness.transport, message)
    assert sorted(r.recipient.email for r in results) == sorted(r.email for r in message.recipients)
    assert all(r.accepted for r in results), [r.error for r in results]
    copies = harness.delivered()
    assert sorted(c.to for c in copies) == sorted(r.email for r in message.recipients)
    assert {c.subject for c in copies} == {message.subject}


def test_placeholders_are_filled_per_recipient(harness: Harness) -> None:
    message = make_message(3)
    send(harness.transport, message)
    by_to = {c.to: c for c in harness.delivered()}
    for recipient in message.recipients:
        copy = by_to[recipient.email]
        for body in (copy.text, copy.html or ""):
            assert "__NL_" not in body
        unsubscribe = recipient.substitutions[Placeholder.UNSUBSCRIBE_URL]
        preferences = recipient.substitutions[Placeholder.PREFERENCES_URL]
        assert unsubscribe in copy.text and preferences in copy.text
        assert copy.html is not None and unsubscribe in copy.html and preferences in copy.html
        others = [r for r in message.recipients if r is not recipient]
        for other in others:
            assert other.substitutions[Placeholder.UNSUBSCRIBE_URL] not in copy.text


def test_both_list_unsubscribe_headers_and_the_message_id(harness: Harness) -> None:
    message = make_message(2)
    send(harness.transport, message)
    by_to = {c.to: c for c in harness.delivered()}
    for recipient in message.recipients:
        headers = by_to[recipient.email].headers
        assert headers["List-Unsubscribe"] == f"<{recipient.list_unsubscribe_url}>"
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["Message-ID"] == recipient.message_id


def test_the_list_headers_of_a_bulk_sender(harness: Harness) -> None:
    message = make_message(2)
    send(harness.transport, message)
    for copy in harness.delivered():
        assert copy.headers["List-Id"] == "PPRNet Monthly <pprnet-monthly.example.org>"
        assert copy.headers["Precedence"] == "bulk"
        assert (
            copy.headers["Feedback-ID"] == "2026-01:default:newsletter:pprnet-monthly.example.org"
        )
        assert "X-Newsletter-Subscriber" not in copy.headers


def test_a_refused_batch_raises_a_typed_error_and_delivers_nothing(harness: Harness) -> None:
    with harness.transport as transport:
        harness.refuse_next_batch()
        with pytest.raises(Exception) as caught:
            transport.send_batch(make_message(min(2, transport.max_batch)))
    assert isinstance(caught.value, (PermanentDeliveryError, TemporaryDeliveryError)), repr(
        caught.value
    )
    assert harness.delivered() == []


def test_a_recipient_that_cannot_be_built_fails_alone(harness: Harness) -> None:
    message = make_message(3)
    bad = replace(message.recipients[1], name=UNBUILDABLE)
    message = replace(message, recipients=(message.recipients[0], bad, message.recipients[2]))
    results = send(harness.transport, message)
    by_email = {r.recipient.email: r for r in results}
    assert [by_email[f"reader{i}@example.com"].accepted for i in (1, 2, 3)] == [True, False, True]
    error = by_email["reader2@example.com"].error
    assert error is not None and "\n" not in error and "reader2" not in error
    assert error.startswith("the message could not be built: the To header: the name contains")
    assert sorted(c.to for c in harness.delivered()) == [
        "reader1@example.com",
        "reader3@example.com",
    ]


# --- the registry, seen from a provider added at run time ----------------------------------------


def test_a_registered_transport_is_configured_and_chosen_without_editing_config(
    tmp_path: Path,
) -> None:
    registry.register(JSONL)
    try:
        root = _project_with(
            tmp_path, "delivery:\n  transport: jsonl\n  jsonl:\n    path: x.jsonl\n"
        )
        settings = load_settings(root, env={})
        assert settings.delivery.transport == "jsonl"
        assert "jsonl" in registry.names()
        transport = registry.get_transport("jsonl", settings.delivery)
        assert isinstance(transport, TOY.JsonlTransport) and transport.path == root / "x.jsonl"
    finally:
        registry.unregister("jsonl")
    assert "jsonl" not in registry.names()
