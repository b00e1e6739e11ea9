"""The SendGrid Signed Event Webhook over real HTTP, signed with a throwaway ECDSA P-256 key.

Valid posts change statuses and the ledger once; tampered, unsigned, stale, foreign-key and
replayed posts change nothing; without a configured key the route refuses to work at all.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.config import Settings
from newsletter.delivery.memory import MemoryTransport
from newsletter.issues import load_topics, read_issue
from newsletter.models import LedgerStatus, Subscriber, SubscriberStatus
from newsletter.send import send_issue
from newsletter.store.engine import open_database
from newsletter.store.schema import deliveries
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db
from tests.peers.sendgrid_server import SendGridServer
from tests.webkit import LiveServer, serving

PATH = "/webhooks/sendgrid"
MONTH = "2021-01"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as SendGrid's console shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def signed_headers(
    key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        SIGNATURE: base64.b64encode(signature).decode("ascii"),
        TIMESTAMP: stamp,
        "Content-Type": "application/json",
    }


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def with_sendgrid(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some of ``delivery.sendgrid`` changed (e.g. ``webhook_key``)."""
    section = dataclasses.replace(settings.delivery.section("sendgrid"), **changes)
    return dataclasses.replace(
        settings, delivery=settings.delivery.with_section("sendgrid", section)
    )


@pytest.fixture
def keyed(db_settings: Settings, signing_key: ec.EllipticCurvePrivateKey) -> Settings:
    """The signed webhook's settings on each kind of database (SQLite, PostgreSQL)."""
    return with_sendgrid(db_settings, webhook_key=public_key_text(signing_key))


@dataclasses.dataclass
class World:
    settings: Settings
    store: SubscriberStore
    engine: sa.Engine
    people: dict[str, Subscriber]
    server: LiveServer
    key: ec.EllipticCurvePrivateKey

    def post(self, events: list[dict[str, Any]], **options: Any) -> httpx.Response:
        body = json.dumps(events).encode()
        headers = signed_headers(self.key, body, **options)
        return httpx.post(self.server.url + PATH, content=body, headers=headers, timeout=10)

    def status(self, name: str) -> SubscriberStatus:
        found = self.store.get_by_id(self.people[name].id)
        assert found is not None
        return found.status

    def statuses(self) -> dict[str, SubscriberStatus]:
        return {name: self.status(name) for name in self.people}

    def ledger(self, name: str) -> sa.Row[Any]:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(deliveries).where(deliveries.c.subscriber_id == self.people[name].id)
            ).one()

    def event_count(self) -> int:
        return sum(len(self.store.events(person.id)) for person in self.people.values())


NAMES = ("bounced", "complainer", "leaver", "grouper", "dropped", "delivered", "quiet")


@pytest.fixture
def world(keyed: Settings, signing_key: ec.EllipticCurvePrivateKey) -> Iterator[World]:
    """Seven active readers who all got the 2021-01 issue (a real send run, memory transport)."""
    engine = open_database(keyed.database_url)
    store = SubscriberStore(engine)
    people = {name: store.add(f"{name}@example.com") for name in NAMES}
    issue = read_issue(keyed.issues_dir / f"{MONTH}.md", load_topics(keyed.topics_file))
    assert send_issue(keyed, db(keyed), issue, transport=MemoryTransport()).sent == len(NAMES)
    with serving(keyed) as server:
        yield World(keyed, store, engine, people, server, signing_key)


def event(world: World, name: str, kind: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": f"{name}@example.com",
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": "abc123.filter0001.1.0",
        "newsletter_issue": MONTH,
        "newsletter_subscriber_id": str(world.people[name].id),
        **extra,
    }


def valid_batch(world: World) -> list[dict[str, Any]]:
    return [
        event(world, "bounced", "bounce", "ev-1", reason="550 5.1.1 no such user", type="bounce"),
        event(world, "complainer", "spamreport", "ev-2"),
        event(world, "leaver", "unsubscribe", "ev-3"),
        event(world, "grouper", "group_unsubscribe", "ev-4", asm_group_id=1),
        event(world, "dropped", "dropped", "ev-5", reason="Bounced Address"),
        event(world, "delivered", "delivered", "ev-6", response="250 OK"),
        event(world, "quiet", "open", "ev-7"),  # not ours to act on
        event(world, "quiet", "processed", "ev-8"),
    ]


def test_a_valid_signed_post_maps_events_to_statuses_and_the_ledger(world: World) -> None:
    answer = world.post(valid_batch(world))
    assert answer.status_code == 200
    assert answer.json()["status_changes"] == 5
    assert world.statuses() == {
        "bounced": SubscriberStatus.BOUNCED,
        "complainer": SubscriberStatus.COMPLAINED,
        "leaver": SubscriberStatus.UNSUBSCRIBED,
        "grouper": SubscriberStatus.UNSUBSCRIBED,
        "dropped": SubscriberStatus.BOUNCED,
        "delivered": SubscriberStatus.ACTIVE,
        "quiet": SubscriberStatus.ACTIVE,
    }
    last = world.store.events(world.people["bounced"].id)[-1]
    assert (last.kind, last.source, last.external_id) == ("bounced", "webhook", "sendgrid:ev-1")
    assert "550 5.1.1" in last.reason
    bounced_row = world.ledger("bounced")
    assert bounced_row.status == LedgerStatus.FAILED.value
    assert "550 5.1.1" in bounced_row.error
    assert world.ledger("delivered").delivered_at is not None
    assert world.ledger("delivered").status == LedgerStatus.SENT.value
    assert world.ledger("quiet").delivered_at is None


def test_a_replayed_post_changes_nothing_twice(world: World) -> None:
    batch = valid_batch(world)
    assert world.post(batch).status_code == 200
    events_after_first = world.event_count()
    delivered_at = world.ledger("delivered").delivered_at
    # The editor reactivates someone by hand; a replay of the old bounce must not undo that.
    world.store.set_status(
        world.people["bounced"].id, SubscriberStatus.ACTIVE, reason="fixed", source="cli"
    )
    events_after_first += 1

    again = world.post(batch)
    assert again.status_code == 200
    assert again.json()["status_changes"] == 0
    assert again.json()["ledger_changes"] == 0
    assert world.event_count() == events_after_first
    assert world.status("bounced") is SubscriberStatus.ACTIVE
    assert world.ledger("delivered").delivered_at == delivered_at


def test_a_tampered_body_is_refused_and_changes_nothing(world: World) -> None:
    body = json.dumps(valid_batch(world)).encode()
    headers = signed_headers(world.key, body)
    tampered = body.replace(b"bounced@example.com", b"quiet@example.com")
    answer = httpx.post(world.server.url + PATH, content=tampered, headers=headers)
    assert answer.status_code == 403
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


def test_a_tampered_timestamp_is_refused(world: World) -> None:
    body = json.dumps(valid_batch(world)).encode()
    headers = signed_headers(world.key, body)
    headers[TIMESTAMP] = str(int(headers[TIMESTAMP]) + 1)
    assert httpx.post(world.server.url + PATH, content=body, headers=headers).status_code == 403
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


@pytest.mark.parametrize("missing", [SIGNATURE, TIMESTAMP, "both"])
def test_an_unsigned_post_is_refused(world: World, missing: str) -> None:
    body = json.dumps(valid_batch(world)).encode()
    headers = signed_headers(world.key, body)
    for name in (SIGNATURE, TIMESTAMP) if missing == "both" else (missing,):
        del headers[name]
    assert httpx.post(world.server.url + PATH, content=body, headers=headers).status_code == 403
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


@pytest.mark.parametrize("age", [11 * 60, -11 * 60, 10**9])
def test_stale_or_future_timestamps_are_refused(world: World, age: int) -> None:
    answer = world.post(valid_batch(world), timestamp=int(time.time()) - age)
    assert answer.status_code == 403
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


def test_a_slightly_old_timestamp_is_accepted(world: World) -> None:
    answer = world.post(
        [event(world, "leaver", "unsubscribe", "ev-x")], timestamp=int(time.time()) - 60
    )
    assert answer.status_code == 200
    assert world.status("leaver") is SubscriberStatus.UNSUBSCRIBED


def test_a_post_signed_with_another_key_is_refused(world: World) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    body = json.dumps(valid_batch(world)).encode()
    answer = httpx.post(
        world.server.url + PATH, content=body, headers=signed_headers(stranger, body)
    )
    assert answer.status_code == 403
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


def test_garbage_signatures_are_refused_not_crashed_on(world: World) -> None:
    body = json.dumps(valid_batch(world)).encode()
    for signature in ("not base64!", "", "QUJD", "A" * 5000):
        headers = signed_headers(world.key, body)
        headers[SIGNATURE] = signature
        answer = httpx.post(world.server.url + PATH, content=body, headers=headers)
        assert answer.status_code == 403, signature
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


def test_signed_but_malformed_json_is_a_400(world: World) -> None:
    for body in (b"{not json", b'{"event": "bounce"}', b"[1, 2]"):
        answer = httpx.post(
            world.server.url + PATH, content=body, headers=signed_headers(world.key, body)
        )
        assert answer.status_code == 400


def test_events_without_custom_args_are_matched_by_address(world: World) -> None:
    bare = {"email": "LEAVER@example.com", "event": "unsubscribe", "sg_event_id": "ev-bare"}
    wrong_id = {
        "email": "complainer@example.com",
        "event": "spamreport",
        "sg_event_id": "ev-wrong",
        "newsletter_subscriber_id": str(world.people["quiet"].id),  # does not match the address
    }
    unknown = {"email": "stranger@example.com", "event": "bounce", "sg_event_id": "ev-unknown"}
    answer = world.post([bare, wrong_id, unknown])
    assert answer.json()["unmatched"] == 1
    assert world.status("leaver") is SubscriberStatus.UNSUBSCRIBED
    assert world.status("complainer") is SubscriberStatus.COMPLAINED
    assert world.status("quiet") is SubscriberStatus.ACTIVE


def test_a_complaint_is_not_weakened_by_a_later_unsubscribe(world: World) -> None:
    world.post([event(world, "complainer", "spamreport", "ev-a")])
    world.post([event(world, "complainer", "unsubscribe", "ev-b")])
    assert world.status("complainer") is SubscriberStatus.COMPLAINED


def test_a_blocked_bounce_fails_the_delivery_but_keeps_the_reader(world: World) -> None:
    world.post(
        [event(world, "quiet", "bounce", "ev-block", type="blocked", reason="421 try later")]
    )
    assert world.status("quiet") is SubscriberStatus.ACTIVE
    assert world.ledger("quiet").status == LedgerStatus.FAILED.value


def test_without_a_key_the_route_refuses_to_work(
    settings: Settings, signing_key: ec.EllipticCurvePrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    store = SubscriberStore(open_database(settings.database_url))
    person = store.add("person@example.com")
    events = [{"email": "person@example.com", "event": "unsubscribe", "sg_event_id": "e"}]
    body = json.dumps(events).encode()
    assert settings.delivery.section("sendgrid").webhook_key is None
    with serving(settings) as server:
        answer = httpx.post(
            server.url + PATH, content=body, headers=signed_headers(signing_key, body)
        )
    assert answer.status_code == 503
    assert "NEWSLETTER_SENDGRID_WEBHOOK_KEY" in caplog.text
    found = store.get_by_id(person.id)
    assert found is not None and found.status is SubscriberStatus.ACTIVE


def test_a_transport_without_a_webhook_answers_404(
    keyed: Settings, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """Only providers with a webhook hook have a route; a signed post elsewhere finds nothing."""
    body = b"[]"
    with serving(keyed) as server:
        for name in ("outbox", "smtp", "memory", "pigeon", "newsletter.config"):
            answer = httpx.post(
                f"{server.url}/webhooks/{name}",
                content=body,
                headers=signed_headers(signing_key, body),
            )
            assert answer.status_code == 404, name
        ok = httpx.post(server.url + PATH, content=body, headers=signed_headers(signing_key, body))
        assert ok.status_code == 200


def test_an_unusable_key_also_refuses(settings: Settings) -> None:
    broken = with_sendgrid(settings, webhook_key="bm90IGEga2V5")
    with serving(broken) as server:
        answer = httpx.post(
            server.url + PATH, content=b"[]", headers={TIMESTAMP: "1", SIGNATURE: "x"}
        )
    assert answer.status_code == 503


def test_get_is_not_allowed(world: World) -> None:
    assert httpx.get(world.server.url + PATH).status_code == 405


def test_odd_numbers_in_headers_and_custom_args_are_handled(world: World) -> None:
    body = json.dumps(valid_batch(world)).encode()
    for stamp in ("²³", "1" * 40, "-5", "1.5e9"):
        headers = signed_headers(world.key, body)
        headers[TIMESTAMP] = stamp
        answer = httpx.post(
            world.server.url + PATH,
            content=body,
            headers={k: v.encode("latin-1") for k, v in headers.items()},
        )
        assert answer.status_code == 403, stamp
    odd = [
        {
            "email": "leaver@example.com",
            "event": "unsubscribe",
            "sg_event_id": "o1",
            "newsletter_subscriber_id": "²",
        },
        {
            "email": "grouper@example.com",
            "event": "unsubscribe",
            "sg_event_id": "o2",
            "newsletter_subscriber_id": "9" * 400,
        },
        {
            "email": "delivered@example.com",
            "event": "delivered",
            "sg_event_id": "o3",
            "newsletter_subscriber_id": None,
            "timestamp": 10**30,
        },
        {"email": ["not", "text"], "event": "bounce", "sg_event_id": "o4"},
        {"event": {"nested": True}},
    ]
    answer = world.post(odd)
    assert answer.status_code == 200
    assert world.status("leaver") is SubscriberStatus.UNSUBSCRIBED  # matched by address instead
    assert world.status("grouper") is SubscriberStatus.UNSUBSCRIBED


def test_events_built_from_a_real_sendgrid_send_find_their_rows(
    keyed: Settings, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """The custom args our SendGrid transport sends are the ones the webhook reads back."""
    engine = open_database(keyed.database_url)
    store = SubscriberStore(engine)
    kept, lost = store.add("kept@example.com"), store.add("lost@example.com")
    issue = read_issue(keyed.issues_dir / f"{MONTH}.md", load_topics(keyed.topics_file))
    with SendGridServer() as sendgrid:
        over_api = with_sendgrid(keyed, host=sendgrid.url, api_key=sendgrid.api_key)
        over_api = dataclasses.replace(
            over_api, delivery=dataclasses.replace(over_api.delivery, transport="sendgrid")
        )
        assert send_issue(over_api, db(over_api), issue).sent == 2
        events = []
        for number, (_, personalization) in enumerate(sendgrid.personalizations()):
            address = personalization["to"][0]["email"]
            events.append(
                {
                    "email": address,
                    "event": "delivered" if address == "kept@example.com" else "bounce",
                    "type": "bounce",
                    "reason": "550 mailbox gone",
                    "sg_event_id": f"real-{number}",
                    "sg_message_id": f"{sendgrid.message_ids[0]}.filterdrecv-1",
                    **personalization.get("custom_args", {}),
                }
            )
    assert all("newsletter_subscriber_id" in event for event in events)
    body = json.dumps(events).encode()
    with serving(over_api) as server:
        answer = httpx.post(
            server.url + PATH, content=body, headers=signed_headers(signing_key, body)
        )
    assert answer.status_code == 200
    assert answer.json()["unmatched"] == 0
    with engine.connect() as conn:
        rows = {row.subscriber_id: row for row in conn.execute(sa.select(deliveries))}
    assert rows[kept.id].delivered_at is not None
    assert rows[lost.id].status == LedgerStatus.FAILED.value
    gone = store.get_by_id(lost.id)
    assert gone is not None and gone.status is SubscriberStatus.BOUNCED


def test_without_the_issue_arg_the_ledger_row_is_found_by_message_id(world: World) -> None:
    provider_id = world.ledger("delivered").provider_message_id
    assert provider_id
    base = {"email": "delivered@example.com", "event": "delivered"}
    wrong = {**base, "sg_event_id": "m1", "sg_message_id": "someone-else.filter"}
    right = {**base, "sg_event_id": "m2", "sg_message_id": f"{provider_id}.filterdrecv-7"}
    assert world.post([wrong]).json()["ledger_changes"] == 0
    assert world.ledger("delivered").delivered_at is None
    assert world.post([right]).json()["ledger_changes"] == 1
    assert world.ledger("delivered").delivered_at is not None


EIGHT_MB = 8 * 1024 * 1024


def send_head_and_wait(server: LiveServer, head: dict[str, str], length: int) -> bytes:
    """Declare a ``length``-byte body, send only its first 64 KiB, and read what comes back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        lines = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"[" * 65536)
        sock.settimeout(5)  # the other 8 MB are never sent: an answer must come without them
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_an_unsigned_8_mb_post_is_refused_before_its_body_is_read(world: World) -> None:
    answer = send_head_and_wait(world.server, {"Content-Type": "application/json"}, EIGHT_MB)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]


def test_a_stale_8_mb_post_is_refused_before_its_body_is_read(world: World) -> None:
    head = {SIGNATURE: "QUJD", TIMESTAMP: str(int(time.time()) - 3600)}
    assert send_head_and_wait(world.server, head, EIGHT_MB).startswith(b"HTTP/1.1 403 ")


def test_a_body_over_the_limit_is_a_413_while_streaming(world: World) -> None:
    body = b"[" + b" " * (EIGHT_MB + 10) + b"]"
    headers = signed_headers(world.key, body)

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting while reading can stop it
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    streamed = httpx.post(world.server.url + PATH, content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413
    assert streamed.json() == {"error": "the body is too large"}
    declared = send_head_and_wait(world.server, headers, EIGHT_MB + 1)
    assert declared.startswith(b"HTTP/1.1 413 ")
    assert set(world.statuses().values()) == {SubscriberStatus.ACTIVE}


def test_signed_deeply_nested_json_is_a_400(world: World) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'[{"a":' * 50_000 + b"1" + b"}]" * 50_000):
        answer = httpx.post(
            world.server.url + PATH, content=body, headers=signed_headers(world.key, body)
        )
        assert answer.status_code == 400
        assert answer.json() == {"error": "the body is nested too deeply"}


def test_a_ledger_event_must_name_the_rows_address(world: World) -> None:
    """The echoed id of one reader with another's address changes no ledger row."""
    forged = event(world, "delivered", "delivered", "f1")
    forged["email"] = "quiet@example.com"
    answer = world.post([forged])
    assert answer.json()["ledger_changes"] == 0
    assert world.ledger("delivered").delivered_at is None
    honest = event(world, "delivered", "delivered", "f2")
    honest["email"] = "Delivered@Example.com"
    assert world.post([honest]).json()["ledger_changes"] == 1
    assert world.ledger("delivered").delivered_at is not None
    assert world.post([honest]).json()["ledger_changes"] == 0
