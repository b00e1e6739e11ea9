"""Readers get the digest they asked for: variants by topics and mode, on every transport."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.delivery.base import DeliveryResult
from newsletter.delivery.memory import MemoryTransport
from newsletter.errors import DeliveryError
from newsletter.mime import build_message
from newsletter.models import Issue, LedgerStatus, OutgoingMessage, TopicMode
from newsletter.send import send_issue, send_report
from newsletter.store.schema import deliveries
from newsletter.variants import Variant, Variants
from newsletter.web.preview import PreviewServer, PreviewSource
from tests.dbkit import db
from tests.peers.sendgrid_server import SendGridServer
from tests.peers.smtp_server import SmtpServer
from tests.sendkit import bodies, read_maildir
from tests.test_send_smtp import smtp_settings
from tests.variantkit import (
    READERS,
    VARIANT_MONTH,
    add_readers,
    articles_in,
    check_body,
    write_issue,
)

SENT_TO = {r.email for r in READERS if r.expected}
SKIPPED = {r.email for r in READERS if not r.expected}


def test_variant_keys_follow_topics_and_mode(settings: Settings) -> None:
    variants = Variants(write_issue(settings))
    assert variants.default == "1,2,3"
    for reader in READERS:
        key = variants.key_for(reader.topics, reader.mode)
        variant = variants.variant(key)
        assert tuple(i + 1 for i in variant.order) == reader.expected, reader.email
        assert tuple(sorted(i + 1 for i in variant.marked)) == tuple(sorted(reader.marked))
        assert variants.key_for_row(json.dumps(list(reader.topics)), reader.mode.value) == key
        choice = reader.mode.value + json.dumps(list(reader.topics)) if reader.topics else None
        assert variants.key_for_choice(choice) == key
    assert variants.key_for(["Attachment"], TopicMode.ALL) == "1*,2,3"
    assert variants.key_for(["Anxiety Disorders"], TopicMode.ONLY) == ""
    assert Variant.parse(" 2*, 1 ,3", 3).key == "2*,1,3"
    for bad in ("4", "1,1", "x", "0"):
        with pytest.raises(ValueError):
            Variant.parse(bad, 3)


def test_memory_send_gives_each_reader_their_articles_and_skips_only_readers_without_any(
    db_settings: Settings,
) -> None:
    settings = db_settings
    issue = write_issue(settings)
    readers = add_readers(settings, copies=3)
    transport = MemoryTransport(max_batch=4)
    summary = send_issue(settings, db(settings), issue, transport=transport)
    got = Counter(r.email for _, r in transport.delivered)
    expected = {a for a, r in readers.items() if r.expected}
    assert set(got) == expected and set(got.values()) == {1}
    assert summary.status == "completed" and summary.skipped == 3
    for message, recipient in transport.delivered:
        built = build_message(message, recipient)
        text, html = bodies(built)
        check_body(readers[recipient.email], text, html)
    # Every batch (and so every rendering handed to the transport) is one variant.
    for message in transport.batches:
        assert len({readers[r.email].expected for r in message.recipients}) == 1
        assert len({tuple(readers[r.email].marked) for r in message.recipients}) == 1
    report = send_report(db(settings), VARIANT_MONTH)
    assert report.counts[LedgerStatus.SKIPPED] == 3
    assert report.counts[LedgerStatus.SENT] == len(expected)
    assert dict(report.variants) == {
        "1,2,3": 3 * 3,  # plain, plain-only, none-all
        "1*,2,3": 3,
        "2*,1,3": 3,
        "2*,3*,1": 3,
        "2": 3,
        "1,3": 3,
    }
    with db(settings).engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.email, deliveries.c.variant)).all()
    variants = Variants(issue)
    for email, variant in rows:
        reader = readers[email]
        key = variants.key_for(reader.topics, reader.mode)
        assert variant == (key or None)


def test_an_issues_doi_records_are_read_once_for_all_its_variants(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering is per variant; the DOI records behind it are per issue: one read of them."""
    import newsletter.render
    import newsletter.renderings

    settings = db_settings
    issue = write_issue(settings)
    add_readers(settings)
    reads = []
    real = newsletter.render.doi_records

    def counted(read_for: Issue) -> object:
        reads.append(read_for.month)
        return real(read_for)

    for module in (newsletter.render, newsletter.renderings):  # wherever a rendering reads them
        monkeypatch.setattr(module, "doi_records", counted)
    transport = MemoryTransport(max_batch=4)
    send_issue(settings, db(settings), issue, transport=transport)
    assert len({message.html for message in transport.batches}) > 3  # several renderings …
    assert len(reads) == 1  # … from one read of the records


def test_skipped_readers_stay_skipped_across_resume_and_report(
    project: Path, settings: Settings
) -> None:
    write_issue(settings)
    add_readers(settings)
    first = MemoryTransport(max_batch=2)
    first.fail_after = 2  # the third recipient: the run stops with a temporary error

    with pytest.raises(DeliveryError):
        send_issue(settings, db(settings), write_issue(settings), transport=first)
    again = MemoryTransport(max_batch=2)
    summary = send_issue(
        settings, db(settings), write_issue(settings), transport=again, resume=True
    )
    assert summary.status == "completed"
    delivered = [r.email for _, r in first.delivered] + [r.email for _, r in again.delivered]
    assert Counter(delivered) == Counter(SENT_TO)
    assert not SKIPPED & set(delivered)
    result = CliRunner().invoke(
        main, ["--project", str(project), "report", VARIANT_MONTH, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"]["skipped"] == len(SKIPPED)
    assert data["counts"]["sent"] == len(SENT_TO)
    assert sum(data["variants"].values()) == len(SENT_TO)
    text = CliRunner().invoke(main, ["--project", str(project), "report", VARIANT_MONTH])
    assert "skipped 1" in text.output and "variants:" in text.output
    # A resume of the completed send leaves them alone.
    third = MemoryTransport()
    send_issue(settings, db(settings), write_issue(settings), transport=third, resume=True)
    assert third.delivered == []


def test_dry_run_lists_the_variants_and_their_readers(project: Path, settings: Settings) -> None:
    write_issue(settings)
    add_readers(settings, copies=2)
    result = CliRunner().invoke(
        main, ["--project", str(project), "send", VARIANT_MONTH, "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "7 variant(s)" in result.output
    assert "dry run: 16 recipient(s) would get it, 2 skipped" in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "reader(s)" in line}
    assert "6 reader(s)" in lines["1,2,3"]
    assert "2 reader(s)" in lines["skipped"] and "none of their topics" in lines["skipped"]
    assert "Treating Low Mood Early *; Attachment Styles" in lines["2*,1,3"]
    assert db(settings).ledger().find(VARIANT_MONTH) is None  # nothing written


def test_outbox_messages_carry_each_readers_variant(settings: Settings) -> None:
    readers = add_readers(settings)
    send_issue(settings, db(settings), write_issue(settings))
    messages = read_maildir(settings.delivery.section("outbox").path)
    assert Counter(str(m["To"]).split("<")[-1].rstrip(">") for m in messages) == Counter(SENT_TO)
    for message in messages:
        text, html = bodies(message)
        check_body(readers[str(message["To"]).split("<")[-1].rstrip(">")], text, html)


def test_smtp_messages_carry_each_readers_variant(project: Path, clean_env: None) -> None:
    with SmtpServer() as server:
        settings = smtp_settings(project, server)
        readers = add_readers(settings)
        send_issue(settings, db(settings), write_issue(settings))
        received = list(server.messages)
    assert Counter(r for m in received for r in m.rcpt_tos) == Counter(SENT_TO)
    for message in received:
        text, html = bodies(message.message)
        check_body(readers[message.rcpt_tos[0]], text, html)


def test_sendgrid_requests_carry_one_variant_each(
    project: Path, clean_env: None, sendgrid_server: SendGridServer
) -> None:
    path = project / "schedule.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("transport: outbox", "transport: sendgrid"),
        encoding="utf-8",
    )
    env = {
        "NEWSLETTER_SENDGRID_HOST": sendgrid_server.url,
        "SENDGRID_API_KEY": sendgrid_server.api_key,
    }
    settings = load_settings(project, env=env)
    readers = add_readers(settings, copies=2)
    send_issue(settings, db(settings), write_issue(settings))
    assert Counter(sendgrid_server.recipients()) == Counter(
        a for a, r in readers.items() if r.expected
    )
    for body in sendgrid_server.accepted:
        content = {c["type"]: c["value"] for c in body["content"]}
        people = [readers[p["to"][0]["email"]] for p in body["personalizations"]]
        assert len({(r.expected, r.marked) for r in people}) == 1  # one variant per request
        check_body(people[0], content["text/plain"], content["text/html"])


def test_resending_unconfirmed_gives_the_variant_first_sent(settings: Settings) -> None:
    readers = add_readers(settings)

    class Dies(MemoryTransport):
        def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
            results = super().send_batch(message)
            if len(self.batches) == 2:
                raise RuntimeError("the process died here")
            return results

    with pytest.raises(RuntimeError):
        send_issue(settings, db(settings), write_issue(settings), transport=Dies(max_batch=2))
    again = MemoryTransport(max_batch=2)
    send_issue(
        settings,
        db(settings),
        write_issue(settings),
        transport=again,
        resume=True,
        resend_unconfirmed=True,
    )
    assert again.delivered
    for message, recipient in again.delivered:
        text, html = bodies(build_message(message, recipient))
        check_body(readers[recipient.email], text, html)
    assert send_report(db(settings), VARIANT_MONTH).resent >= 1


def test_preview_shows_any_variant(settings: Settings) -> None:
    issue = write_issue(settings)
    source = PreviewSource(
        issue_path=issue.path,
        topics_file=settings.topics_file,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        display_path=f"issues/{VARIANT_MONTH}.md",
    )
    with PreviewServer(source, port=0) as server:
        base = server.url.rstrip("/")
        page = httpx.get(base + "/?topic=Therapist+Factors", timeout=10).text
        assert "Variant: <code>3*,1,2</code>" in page and 'value="Attachment"' in page
        assert "email.html?v=" in page and "&amp;topic=Therapist+Factors" in page
        text = httpx.get(base + "/email.txt?topic=Attachment&mode=only", timeout=10).text
        assert articles_in(text) == (1,) and "only the articles on the topics you follow" in text
        html = httpx.get(base + "/email.html?variant=2*,1", timeout=10).text
        assert articles_in(html) == (2, 1)
        skipped = httpx.get(base + "/?topic=Anxiety+Disorders&mode=only", timeout=10).text
        assert "is not sent this issue" in skipped
        default = httpx.get(base + "/email.txt", timeout=10).text
        assert articles_in(default) == (1, 2, 3)
