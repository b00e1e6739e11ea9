"""SendGrid transport and API client against the local v3 stand-in (real HTTP, schema-checked)."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace

import pytest

from newsletter.delivery.base import split_batches
from newsletter.delivery.sendgrid.settings import SendGridSettings
from newsletter.delivery.sendgrid.transport import (
    CUSTOM_ARG_ISSUE,
    CUSTOM_ARG_SUBSCRIBER,
    SendGridAPI,
    SendGridTransport,
)
from newsletter.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.models import Placeholder
from tests.peers.fixtures import make_message
from tests.peers.sendgrid_server import (
    Answer,
    Fault,
    PeerRequest,
    SendGridServer,
    load_schema,
    mail_send_errors,
)


class Sleeps(list[float]):
    """An injected ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def transport(settings: SendGridSettings, **kwargs) -> tuple[SendGridTransport, Sleeps]:
    sleeps = Sleeps()
    return SendGridTransport(settings, sleep=sleeps, **kwargs), sleeps


# --- the stand-in itself --------------------------------------------------------------------------


def test_standin_rejects_an_invalid_payload(sendgrid_server, sendgrid_settings):
    """So a schema-valid verdict on our payloads means something: bad bodies do fail."""
    bad = {
        "personalizations": [{"to": [{"email": "not-an-address"}]}],
        "from": {"email": "newsletter@example.org"},
        "subject": "x",
        "content": [
            {"type": "text/html", "value": "<p>hi</p>"},
            {"type": "text/plain", "value": "hi"},
        ],
    }
    api = SendGridAPI(sendgrid_settings, sleep=Sleeps())
    with pytest.raises(PermanentDeliveryError) as caught:
        api.post("/v3/mail/send", bad)
    text = str(caught.value)
    assert "HTTP 400" in text
    assert "personalizations.0.to.0.email" in text
    assert "text/plain and text/html may only be provided in order" in text
    assert sendgrid_server.accepted == []
    assert len(sendgrid_server.rejected) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.pop("from"), "'from' is a required property"),
        (lambda b: b.update(custom_args="text"), "is not of type 'object'"),
        (lambda b: b["content"][0].update(value=""), "at least one character"),
        (lambda b: b["personalizations"][0].update(custom_args={"n": 1}), "must be strings"),
        (lambda b: b["personalizations"][0].update(headers={"Subject": "x"}), "reserved"),
        (lambda b: b["personalizations"].append({"to": [{"email": "A@example.com"}]}), "unique"),
        (
            lambda b: b["personalizations"][0].update(substitutions={"k": "v" * 10_001}),
            "10,000 bytes",
        ),
        (
            lambda b: b.update(
                personalizations=[{"to": [{"email": f"r{i}@example.com"}]} for i in range(1001)]
            ),
            "1000",
        ),
        (
            lambda b: b.update(
                personalizations=[
                    {"to": [{"email": f"r{i}@example.com"}, {"email": f"s{i}@example.com"}]}
                    for i in range(501)
                ]
            ),
            "1000 total recipients",
        ),
    ],
)
def test_standin_checks_schema_and_documented_limits(change, expected):
    body = {
        "personalizations": [{"to": [{"email": "a@example.com"}]}],
        "from": {"email": "newsletter@example.org"},
        "subject": "x",
        "content": [{"type": "text/plain", "value": "hi"}],
        "custom_args": {"campaign": "jan"},  # an object: what the live API takes
    }
    assert mail_send_errors(body) == []
    change(body)
    messages = " | ".join(e["message"] for e in mail_send_errors(body))
    assert expected in messages


def test_standin_schema_patch_touches_only_top_level_custom_args():
    schema = load_schema()
    assert schema["properties"]["custom_args"]["type"] == "object"
    assert schema["properties"]["send_at"]["type"] == "integer"


def test_standin_needs_the_api_key(sendgrid_server, sendgrid_settings):
    wrong = replace(sendgrid_settings, api_key="SG.wrong-key-123")
    with pytest.raises(PermanentDeliveryError) as caught:
        SendGridTransport(wrong, sleep=Sleeps()).send_batch(make_message(1))
    assert "HTTP 401" in str(caught.value)
    assert "SENDGRID_API_KEY" in str(caught.value)
    assert "SG.wrong-key-123" not in str(caught.value)
    assert sendgrid_server.accepted == []


# --- payloads -------------------------------------------------------------------------------------


def test_one_schema_valid_request_per_batch(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(3)
    results = sender.send_batch(message)

    assert len(sendgrid_server.accepted) == 1
    assert sendgrid_server.rejected == []
    body = sendgrid_server.accepted[0]
    assert mail_send_errors(body) == []
    assert [r.accepted for r in results] == [True, True, True]
    assert {r.provider_message_id for r in results} == {sendgrid_server.message_ids[0]}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"] == message.text  # content sent once, placeholders intact
    assert body["from"] == {"email": "newsletter@example.org", "name": "PPRNet Monthly"}
    assert body["reply_to"] == {"email": "editor@example.org"}
    assert body["subject"] == "January digest"
    assert body["tracking_settings"]["subscription_tracking"]["enable"] is False
    assert body["mail_settings"]["sandbox_mode"]["enable"] is False


def test_each_personalization_has_its_own_links_headers_and_ids(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(3)
    sender.send_batch(message)
    personalizations = sendgrid_server.accepted[0]["personalizations"]
    assert len(personalizations) == 3
    for recipient, entry in zip(message.recipients, personalizations, strict=True):
        unsubscribe = recipient.substitutions[Placeholder.UNSUBSCRIBE_URL]
        assert entry["to"] == [{"email": recipient.email, "name": recipient.name}]
        assert entry["substitutions"] == {
            "__NL_UNSUBSCRIBE_URL__": unsubscribe,
            "__NL_PREFERENCES_URL__": recipient.substitutions[Placeholder.PREFERENCES_URL],
        }
        assert entry["headers"] == {
            "Message-ID": recipient.message_id,
            "List-Unsubscribe": f"<{recipient.list_unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert entry["custom_args"] == {
            CUSTOM_ARG_ISSUE: "2026-01",
            CUSTOM_ARG_SUBSCRIBER: str(recipient.subscriber_id),
        }


def test_text_only_message_and_no_name(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    base = make_message(1, html=None)
    lone = replace(base.recipients[0], name=None, subscriber_id=None)
    sender.send_batch(replace(base, recipients=(lone,), reply_to=None))
    body = sendgrid_server.accepted[0]
    assert body["content"] == [{"type": "text/plain", "value": base.text}]
    assert body["personalizations"][0]["to"] == [{"email": lone.email}]
    assert body["personalizations"][0]["custom_args"] == {CUSTOM_ARG_ISSUE: "2026-01"}
    assert "reply_to" not in body


def test_a_copy_without_list_unsubscribe_still_carries_its_message_id(
    sendgrid_server, sendgrid_settings
):
    """A confirmation email or a --test-to copy has no List-Unsubscribe, but keeps its Message-ID."""
    sender, _ = transport(sendgrid_settings)
    base = make_message(1)
    plain = replace(base.recipients[0], list_unsubscribe_url=None)
    sender.send_batch(replace(base, recipients=(plain,)))
    assert sendgrid_server.rejected == []
    headers = sendgrid_server.accepted[0]["personalizations"][0]["headers"]
    assert headers == {"Message-ID": plain.message_id}


def test_a_line_break_in_a_message_id_is_refused_before_sending(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    base = make_message(1)
    forged = replace(base.recipients[0], message_id="<a@example.org>\r\nBcc: all@example.com")
    with pytest.raises(PermanentDeliveryError, match="Message-ID header contains a line break"):
        sender.send_batch(replace(base, recipients=(forged,)))
    assert sendgrid_server.seen == []


def test_2500_recipients_go_in_requests_of_at_most_1000(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(2500)
    results = []
    for batch in split_batches(message, sender.max_batch):
        results += sender.send_batch(batch)
    sizes = [len(body["personalizations"]) for body in sendgrid_server.accepted]
    assert sizes == [1000, 1000, 500]
    assert sendgrid_server.rejected == []
    assert sorted(sendgrid_server.recipients()) == sorted(r.email for r in message.recipients)
    assert len(results) == 2500 and all(r.accepted for r in results)
    # Each request's message id is given to its own recipients.
    ids = [r.provider_message_id for r in results]
    assert ids[0] == ids[999] == sendgrid_server.message_ids[0]
    assert ids[1000] == sendgrid_server.message_ids[1]
    for body, entry in sendgrid_server.personalizations():
        number = entry["to"][0]["email"].removeprefix("reader").split("@")[0]
        assert entry["substitutions"]["__NL_UNSUBSCRIBE_URL__"].endswith(f"/tok{number}")
        assert entry["custom_args"][CUSTOM_ARG_SUBSCRIBER] == number


def test_batch_size_setting_is_the_batch_limit(sendgrid_server, sendgrid_settings):
    sender, _ = transport(replace(sendgrid_settings, batch_size=2))
    assert sender.max_batch == 2
    with pytest.raises(PermanentDeliveryError, match="at most 2 recipients"):
        sender.send_batch(make_message(3))
    assert sendgrid_server.seen == []


def test_sandbox_mode_is_passed_on(sendgrid_server, sendgrid_settings):
    sender, _ = transport(replace(sendgrid_settings, sandbox=True))
    results = sender.send_batch(make_message(2))
    assert len(sendgrid_server.sandboxed) == 1
    assert sendgrid_server.sandboxed[0]["mail_settings"]["sandbox_mode"]["enable"] is True
    assert sendgrid_server.accepted == []
    assert all(r.accepted for r in results)


# --- limits checked before sending ----------------------------------------------------------------


def test_oversized_substitutions_are_refused_before_sending(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(1)
    long_url = "https://newsletter.example.org/unsubscribe/" + "x" * 10_000
    recipient = replace(
        message.recipients[0], substitutions={Placeholder.UNSUBSCRIBE_URL: long_url}
    )
    with pytest.raises(PermanentDeliveryError, match=r"substitutions for reader1@example.com"):
        sender.send_batch(replace(message, recipients=(recipient,)))
    assert sendgrid_server.seen == []


def test_payload_over_20_mb_is_refused_before_sending(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    huge = make_message(2, html="<p>" + "a" * 21_000_000 + "</p>")
    with pytest.raises(PermanentDeliveryError, match=r"at most 20 MB"):
        sender.send_batch(huge)
    assert sendgrid_server.seen == []


def test_duplicate_address_in_a_batch_is_refused(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(1)
    twin = replace(message.recipients[0], email="READER1@example.com")
    with pytest.raises(PermanentDeliveryError, match="appears twice"):
        sender.send_batch(replace(message, recipients=(*message.recipients, twin)))
    assert sendgrid_server.seen == []


def test_line_break_in_subject_is_refused(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    with pytest.raises(PermanentDeliveryError, match="line break"):
        sender.send_batch(make_message(1, subject="Hi\r\nBcc: everyone@example.com"))
    assert sendgrid_server.seen == []


def test_missing_api_key_is_a_config_error(sendgrid_settings):
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        SendGridTransport(replace(sendgrid_settings, api_key=None))


# --- retries --------------------------------------------------------------------------------------


def test_429_waits_until_x_ratelimit_reset_then_succeeds(sendgrid_server, sendgrid_settings):
    reset = int(time.time()) + 3
    sendgrid_server.inject(Fault(429, {"X-RateLimit-Reset": str(reset)}))
    sender, sleeps = transport(sendgrid_settings)
    results = sender.send_batch(make_message(2))
    assert [s.status for s in sendgrid_server.seen] == [429, 202]
    assert len(sleeps) == 1
    assert 1.0 <= sleeps[0] <= 3.5  # until the reset time, not a blind backoff
    assert all(r.accepted for r in results)
    assert len(sendgrid_server.accepted) == 1


def test_503_twice_then_success_backs_off_with_jitter(sendgrid_server, sendgrid_settings):
    sendgrid_server.inject(Fault(503), Fault(503))
    sender, sleeps = transport(sendgrid_settings)
    sender.send_batch(make_message(2))
    assert [s.status for s in sendgrid_server.seen] == [503, 503, 202]
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0  # full jitter: 0 … base·2ⁿ
    assert len(sendgrid_server.accepted) == 1


def test_slow_answer_times_out_and_is_retried(sendgrid_server, sendgrid_settings):
    sendgrid_server.inject(Fault(delay=1.5))
    sender, sleeps = transport(sendgrid_settings, timeout=0.3)
    results = sender.send_batch(make_message(1))
    assert all(r.accepted for r in results)
    assert len(sleeps) == 1
    assert len(sendgrid_server.accepted) == 1


def test_dropped_connection_is_retried(sendgrid_server, sendgrid_settings):
    sendgrid_server.inject(Fault(drop=True))
    sender, _sleeps = transport(sendgrid_settings)
    sender.send_batch(make_message(1))
    assert [s.status for s in sendgrid_server.seen] == [None, 202]
    assert len(sendgrid_server.accepted) == 1


def test_retries_are_bounded_then_temporary_error(sendgrid_server, sendgrid_settings):
    sendgrid_server.inject(*[Fault(500)] * 10)
    sender, sleeps = transport(sendgrid_settings)
    with pytest.raises(TemporaryDeliveryError, match=r"failed 6 time\(s\), last: HTTP 500"):
        sender.send_batch(make_message(1))
    assert len(sendgrid_server.seen) == 6
    assert len(sleeps) == 5
    assert all(0 <= s <= min(60.0, 2**n) for n, s in enumerate(sleeps))
    assert sendgrid_server.accepted == []


@pytest.mark.parametrize(("status", "name"), [(501, "Not Implemented"), (505, "HTTP Version")])
def test_a_5xx_no_retry_can_change_is_permanent_at_once(
    sendgrid_server, sendgrid_settings, status, name
):
    """501/505 say the request itself is unsupported: six tries would fail six times."""
    sendgrid_server.inject(*[Fault(status)] * 6)
    sender, sleeps = transport(sendgrid_settings)
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send_batch(make_message(1))
    assert f"HTTP {status} ({name}" in str(caught.value)
    assert [s.status for s in sendgrid_server.seen] == [status]
    assert sleeps == []
    assert sendgrid_server.accepted == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_an_outage_5xx_is_still_retried(sendgrid_server, sendgrid_settings, status):
    sendgrid_server.inject(Fault(status))
    sender, sleeps = transport(sendgrid_settings)
    sender.send_batch(make_message(1))
    assert [s.status for s in sendgrid_server.seen] == [status, 202]
    assert len(sleeps) == 1


def test_refused_connection_is_temporary(sendgrid_settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    dead = replace(sendgrid_settings, host=f"http://127.0.0.1:{port}")
    sender, sleeps = transport(dead)
    with pytest.raises(TemporaryDeliveryError, match="refused"):
        sender.send_batch(make_message(1))
    assert len(sleeps) == 5


def test_rate_limit_reset_far_away_gives_up_at_once(sendgrid_server, sendgrid_settings):
    sendgrid_server.inject(Fault(429, {"X-RateLimit-Reset": str(int(time.time()) + 600)}))
    sender, sleeps = transport(sendgrid_settings)
    with pytest.raises(TemporaryDeliveryError) as caught:
        sender.send_batch(make_message(1))
    assert sleeps == []
    assert caught.value.retry_after is not None and caught.value.retry_after > 500


# --- refusals stop the run with SendGrid's words ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (400, "The from address does not match a verified Sender Identity."),
        (401, "The provided authorization grant is invalid, expired, or revoked"),
        (403, "You are not authorized to send from that email address"),
        (413, "content too large"),
    ],
)
def test_refusals_are_permanent_and_quote_sendgrid(
    sendgrid_server, sendgrid_settings, status, said
):
    body = {"errors": [{"message": said, "field": "from"}]}
    sendgrid_server.inject(Fault(status, body=body))
    sender, sleeps = transport(sendgrid_settings)
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send_batch(make_message(1))
    assert f"HTTP {status}" in str(caught.value)
    assert said in str(caught.value)
    assert sleeps == []
    assert len(sendgrid_server.seen) == 1


def test_api_key_never_appears_in_errors_or_logs(sendgrid_server, sendgrid_settings, caplog):
    key = sendgrid_settings.api_key
    echo = {"errors": [{"message": f"bad key {key}", "field": None}]}
    sendgrid_server.inject(Fault(500, body=echo), Fault(400, body=echo))
    sender, _ = transport(sendgrid_settings)
    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentDeliveryError) as caught:
        sender.send_batch(make_message(1))
    assert key not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert key not in caplog.text


# --- the API client helper E builds on ------------------------------------------------------------


def test_api_get_with_query_and_headers(sendgrid_server, sendgrid_settings):
    seen: list[PeerRequest] = []

    def bounces(request: PeerRequest) -> Answer:
        seen.append(request)
        return Answer(200, [{"email": "gone@example.com", "created": 1}], {"Link": "<next>"})

    sendgrid_server.add_route("GET", "/v3/suppression/bounces", bounces)
    sendgrid_server.inject(Fault(429, {"X-RateLimit-Reset": str(int(time.time()))}))
    api = SendGridAPI(sendgrid_settings, sleep=Sleeps())
    body, headers = api.get("/v3/suppression/bounces", {"limit": 500, "offset": 0})
    assert body == [{"email": "gone@example.com", "created": 1}]
    assert headers["link"] == headers["Link"] == "<next>"
    assert seen[0].query == {"limit": ["500"], "offset": ["0"]}
    assert seen[0].headers["Authorization"] == f"Bearer {sendgrid_settings.api_key}"


def test_api_unknown_path_is_permanent(sendgrid_settings):
    api = SendGridAPI(sendgrid_settings, sleep=Sleeps())
    with pytest.raises(PermanentDeliveryError, match=r"GET /v3/nowhere with HTTP 404"):
        api.get("nowhere")


def test_standin_serves_many_requests_concurrently_bounded():
    """A load check that stops itself: 20 batches from 4 threads, all validated."""
    from concurrent.futures import ThreadPoolExecutor

    with SendGridServer() as server:
        settings = SendGridSettings(
            host=server.url, batch_size=100, sandbox=False, api_key=server.api_key
        )
        sender = SendGridTransport(settings, sleep=Sleeps())
        batches = list(split_batches(make_message(2000), 100))
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(sender.send_batch, batches, timeout=60))
        assert server.rejected == []
        assert len(server.recipients()) == len(set(server.recipients())) == 2000


def test_standin_answers_413_to_a_body_over_20_mb(sendgrid_server, sendgrid_settings):
    """What SendGrid does when our own size check is bypassed (raw API call)."""
    api = SendGridAPI(sendgrid_settings, sleep=Sleeps())
    with pytest.raises(PermanentDeliveryError, match=r"HTTP 413 \(the request is too large\)"):
        api.request("POST", "/v3/mail/send", data='"' + "a" * 20_000_001 + '"')


# --- the lean path: one outcome value, kept connections, no debug strings -----------------------


def test_a_batch_outcome_is_one_value_yet_one_result_per_recipient(
    sendgrid_server, sendgrid_settings
):
    from newsletter.delivery.base import BatchResults

    sender, _ = transport(sendgrid_settings)
    message = make_message(4)
    bad = replace(message.recipients[2], name="Evil\r\nBcc: x@example.com")
    recipients = (*message.recipients[:2], bad, message.recipients[3])
    results = sender.send_batch(replace(message, recipients=recipients))

    assert isinstance(results, BatchResults) and not results.uniform
    assert results.accepted_count == 3 and len(results) == 4 == len(list(results))
    assert {r.recipient.email for r in results} == {r.email for r in recipients}
    assert [r.accepted for r in results] == [True, True, True, False]
    assert results[-1].recipient == bad and "could not be built" in (results[-1].error or "")
    assert results[0].provider_message_id == sendgrid_server.message_ids[0]
    assert [r.recipient for r in results[:2]] == list(recipients[:2])

    whole = sender.send_batch(make_message(3, start=10))
    assert isinstance(whole, BatchResults) and whole.uniform and len(whole) == 3


def test_requests_reuse_one_connection_and_build_no_debug_strings(
    sendgrid_server, sendgrid_settings, monkeypatch
):
    import python_http_client.client

    calls: list[object] = []
    monkeypatch.setattr(python_http_client.client.Client, "_make_request", calls.append)
    sender, _ = transport(sendgrid_settings)
    for start in range(0, 30, 3):
        sender.send_batch(make_message(3, start=start + 1))
    sender.close()
    assert sendgrid_server.accepted_count == 10 and sendgrid_server.connections == 1
    assert calls == []  # Mail Send never goes through python_http_client's per-call path


def test_the_mail_send_body_is_compact_utf8_json(sendgrid_server, sendgrid_settings):
    import json

    from newsletter.delivery.sendgrid.transport import dumps

    message = make_message(2)
    sender, _ = transport(sendgrid_settings)
    body = sender.payload(message)
    assert json.loads(dumps(body)) == json.loads(json.dumps(body))
    named = replace(message.recipients[0], name="Zoë Ångström")
    sender.send_batch(replace(message, recipients=(named,)))
    assert sendgrid_server.accepted[0]["personalizations"][0]["to"][0]["name"] == "Zoë Ångström"


# --- the batch-level fast path ---------------------------------------------------------------------


def _one_by_one(message):
    """The personalizations as the one-recipient-at-a-time path builds them."""
    from newsletter.delivery.sendgrid import transport as sg

    to = [sg._address("To", r.email, r.name) for r in message.recipients]
    return [sg._personalization(message, r, t) for r, t in zip(message.recipients, to, strict=True)]


def test_the_batch_fast_path_builds_exactly_what_the_one_by_one_path_builds():
    import orjson

    from newsletter.delivery.sendgrid.transport import _quick_personalizations

    message = make_message(50)
    recipients = list(message.recipients)
    recipients[3] = replace(recipients[3], name=None)  # To without a name
    recipients[7] = replace(recipients[7], list_unsubscribe_url=None)  # no List-Unsubscribe
    recipients[9] = replace(recipients[9], subscriber_id=None)  # no subscriber custom arg
    recipients[11] = replace(recipients[11], name="Zoë Ångström-Ōtsuka")  # non-ASCII name
    message = replace(message, recipients=tuple(recipients))
    quick = _quick_personalizations(message)
    assert quick is not None
    # Key for key, in the same order: the same bytes on the wire.
    assert orjson.dumps(quick) == orjson.dumps(_one_by_one(message))
    assert orjson.dumps(_quick_personalizations(replace(message, issue_month=None))) == (
        orjson.dumps(_one_by_one(replace(message, issue_month=None)))
    )


@pytest.mark.parametrize(
    "change",
    [
        {"email": 'quoted"local"@example.org'},  # valid, but not an everyday address
        {"email": "reader1@example.com"},  # the same reader twice
        {"email": "Reader1@Example.com"},  # the same, in other case
        {"name": "Bad\tName"},  # a refused character
        {"name": "x" * 190},  # maybe over the byte limit: checked one by one
        {"message_id": "<a@b>\r\nBcc: x@y"},  # a header line break
        {"list_unsubscribe_url": "https://x/u\n"},
        {"substitutions": {Placeholder.UNSUBSCRIBE_URL: "u" * 900}},  # near the size limit
    ],
)
def test_a_batch_with_one_doubtful_recipient_takes_the_one_by_one_path(change):
    from newsletter.delivery.sendgrid.transport import _quick_personalizations

    message = make_message(5)
    recipients = list(message.recipients)
    recipients[2] = replace(recipients[2], **change)
    assert _quick_personalizations(replace(message, recipients=tuple(recipients))) is None


def test_a_batch_with_a_bad_address_still_sends_the_others(sendgrid_server, sendgrid_settings):
    sender, _ = transport(sendgrid_settings)
    message = make_message(4)
    recipients = list(message.recipients)
    recipients[1] = replace(recipients[1], name="Bad\u202eName")  # a bidi override: refused
    results = sender.send_batch(replace(message, recipients=tuple(recipients)))
    assert [r.accepted for r in results] == [True, True, True, False]
    assert len(sendgrid_server.accepted[0]["personalizations"]) == 3
