"""Outbox transport: a real Maildir that mail clients (and ``mailbox``) can open."""

from __future__ import annotations

import email
import email.policy
import mailbox
from dataclasses import replace

import pytest

from newsletter.config import load_settings
from newsletter.delivery import get_transport
from newsletter.delivery.base import split_batches
from newsletter.delivery.memory import MemoryTransport
from newsletter.delivery.outbox import OutboxSettings, OutboxTransport
from newsletter.delivery.smtp import SmtpTransport
from newsletter.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.models import Placeholder
from tests.peers.fixtures import make_message


def test_each_recipient_gets_a_file_in_new(tmp_path):
    box = tmp_path / "outbox"
    message = make_message(3)
    with OutboxTransport(OutboxSettings(box)) as transport:
        results = transport.send_batch(message)

    assert all(r.accepted for r in results)
    assert sorted(p.name for p in box.iterdir()) == ["cur", "new", "tmp"]
    assert len(list((box / "new").iterdir())) == 3
    assert list((box / "tmp").iterdir()) == []
    maildir = mailbox.Maildir(box, create=False)
    assert {r.provider_message_id for r in results} == set(maildir.keys())
    by_to = {}
    for key in maildir.iterkeys():
        raw = maildir.get_bytes(key)
        assert b"\r\n" not in raw  # LF on disk, as Maildir readers expect
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        by_to[parsed["To"].addresses[0].addr_spec] = parsed
    for recipient in message.recipients:
        mail = by_to[recipient.email]
        assert mail.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
        assert mail["Message-ID"] == recipient.message_id
        assert mail["List-Unsubscribe"] == f"<{recipient.list_unsubscribe_url}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = mail.get_body(("plain",)).get_content()
        assert recipient.substitutions[Placeholder.UNSUBSCRIBE_URL] in text


def test_outbox_is_created_with_parents_and_batches_add_up(tmp_path):
    box = tmp_path / "deep" / "outbox"
    transport = OutboxTransport(OutboxSettings(box))
    assert transport.max_batch == 500
    with transport:
        for batch in split_batches(make_message(7), 3):
            transport.send_batch(batch)
    assert len(mailbox.Maildir(box, create=False)) == 7


def test_outbox_path_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "outbox"
    path.write_text("not a folder")
    with pytest.raises(PermanentDeliveryError, match=r"delivery.outbox.path: .* not a folder"):
        OutboxTransport(OutboxSettings(path)).open()


def test_failed_batch_leaves_nothing_behind(tmp_path):
    box = tmp_path / "outbox"
    message = make_message(3)
    bad = replace(message, subject="Issue\r\nBcc: all@example.com")
    with OutboxTransport(OutboxSettings(box)) as transport:
        transport.send_batch(replace(message, recipients=message.recipients[:1]))
        with pytest.raises(PermanentDeliveryError, match="line break"):
            transport.send_batch(replace(bad, recipients=message.recipients[1:]))
    maildir = mailbox.Maildir(box, create=False)
    assert len(maildir) == 1  # the first batch only; the failed batch was refused whole


def test_a_reader_whose_message_cannot_be_built_fails_alone(tmp_path):
    box = tmp_path / "outbox"
    message = make_message(3)
    bad = replace(message.recipients[1], name="Mallory\r\nBcc: all@example.com")
    with OutboxTransport(OutboxSettings(box)) as transport:
        results = transport.send_batch(
            replace(message, recipients=(*message.recipients[:1], bad, message.recipients[2]))
        )
    by_email = {r.recipient.email: r for r in results}
    assert len(results) == 3 and [r.accepted for r in results].count(True) == 2
    refused = by_email[bad.email]
    assert not refused.accepted and refused.provider_message_id is None
    assert refused.error is not None and "line break" in refused.error
    assert bad.email not in refused.error and "\n" not in refused.error
    assert len(mailbox.Maildir(box, create=False)) == 2


# --- memory transport and get_transport ------------------------------------------------------------


def test_memory_transport_records_refuses_and_fails_on_cue():
    transport = MemoryTransport(max_batch=10)
    transport.refuse["reader2@example.com"] = "550 no such user"
    results = transport.send_batch(make_message(3))
    assert [r.accepted for r in results] == [True, False, True]
    assert results[1].error == "550 no such user"
    assert transport.emails == ["reader1@example.com", "reader3@example.com"]
    transport.fail_next(TemporaryDeliveryError("try later"))
    with pytest.raises(TemporaryDeliveryError):
        transport.send_batch(make_message(1, start=4))
    transport.send_batch(make_message(1, start=4))
    assert transport.emails[-1] == "reader4@example.com"
    assert len(transport.batches) == 3


def test_get_transport_by_name(settings, monkeypatch):
    delivery = settings.delivery
    assert isinstance(get_transport("outbox", delivery), OutboxTransport)
    assert get_transport("outbox", delivery).path == settings.root / "outbox"
    assert isinstance(
        get_transport(
            "smtp", delivery.with_section("smtp", replace(delivery.section("smtp"), username=None))
        ),
        SmtpTransport,
    )
    assert isinstance(get_transport("memory", delivery), MemoryTransport)
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        get_transport("sendgrid", delivery)
    with_key = load_settings(settings.root, env={"SENDGRID_API_KEY": "SG.x"}).delivery
    assert get_transport("sendgrid", with_key).max_batch == 1000
    with pytest.raises(ConfigError, match="unknown transport 'pigeon'"):
        get_transport("pigeon", delivery)


def test_unwritable_outbox_is_permanent_and_leaves_no_temp_files(tmp_path):
    box = tmp_path / "outbox"
    transport = OutboxTransport(OutboxSettings(box))
    transport.open()
    (box / "new").rmdir()
    (box / "new").write_text("in the way")  # renames into new/ now fail
    with pytest.raises(PermanentDeliveryError, match="cannot write to the outbox"):
        transport.send_batch(make_message(2))
    transport.close()
    assert list((box / "tmp").iterdir()) == []


def test_one_sync_per_batch_after_the_files_are_in_new(tmp_path, monkeypatch):
    """Durable before the run records the batch sent: one file-system sync, none per message."""
    import newsletter.delivery.outbox as outbox

    synced: list[int] = []
    real = outbox.sync_folder

    def counting(folder):
        synced.append(len(list(folder.iterdir())))  # the files already renamed into new/
        real(folder)

    monkeypatch.setattr(outbox, "sync_folder", counting)
    with OutboxTransport(OutboxSettings(tmp_path / "box")) as transport:
        transport.send_batch(make_message(30))
        transport.send_batch(make_message(20, start=31))
    assert synced == [30, 50]


def test_outbox_files_equal_what_the_email_package_builds(tmp_path):
    from datetime import datetime

    from newsletter.mime import build_message

    message = make_message(5)
    with OutboxTransport(OutboxSettings(tmp_path / "box")) as transport:
        results = transport.send_batch(message)
    box = mailbox.Maildir(tmp_path / "box", create=False)
    for result in results:
        raw = box.get_bytes(result.provider_message_id)
        ours = email.message_from_bytes(raw, policy=email.policy.default)
        date = datetime.fromisoformat(ours["Date"].datetime.isoformat())
        built = build_message(message, result.recipient, date=date)
        same_lines = built.as_bytes(policy=built.policy.clone(linesep="\n"))
        theirs = email.message_from_bytes(same_lines, policy=email.policy.default)
        assert [(k, str(v)) for k, v in ours.items() if k != "Content-Type"] == [
            (k, str(v)) for k, v in theirs.items() if k != "Content-Type"
        ]
        for a, b in zip(ours.iter_parts(), theirs.iter_parts(), strict=True):
            assert list(a.items()) == list(b.items()) and a.get_content() == b.get_content()
