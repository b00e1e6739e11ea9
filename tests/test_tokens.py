"""Signed link tokens: purpose scoping, tampering, forgery, expiry and where the key comes from."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.errors import ConfigError, TokenError
from newsletter.tokens import FastHmac, IdMask, LinkSigner, Purpose, _base36, load_signer

KEY = b"k" * 32
SENT = datetime(2026, 1, 6, 14, 0, tzinfo=UTC)


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(KEY, confirm_max_age=timedelta(days=7))


@pytest.mark.parametrize("purpose", list(Purpose))
def test_round_trip_is_short_and_url_safe(signer: LinkSigner, purpose: Purpose) -> None:
    token = signer.sign(purpose, 1_234_567)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token) and len(token) < 48
    assert signer.verify(purpose, token) == 1_234_567


@pytest.mark.parametrize("made_for", list(Purpose))
def test_a_token_never_works_for_another_purpose(signer: LinkSigner, made_for: Purpose) -> None:
    token = signer.sign(made_for, 7)
    for other in Purpose:
        if other is not made_for:
            with pytest.raises(TokenError):
                signer.verify(other, token)


def test_relabelling_the_purpose_letter_breaks_the_signature(signer: LinkSigner) -> None:
    token = signer.sign(Purpose.PREFERENCES, 7)
    for letter in ("U", "u"):
        with pytest.raises(TokenError, match="signature"):
            signer.verify(Purpose.UNSUBSCRIBE, letter + token[1:])


def _first_version_token(purpose: Purpose, subscriber_id: int, issued: int = 1_700_000_000) -> str:
    """A token as version 1 made them (in emails already sent): lowercase letter, plain id."""
    body = f"{purpose.value[0]}{_base36(subscriber_id)}.{_base36(issued)}"
    link_key = hmac.new(KEY, b"newsletter link tokens v1", hashlib.sha256).digest()
    digest = hmac.new(link_key, body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{base64.urlsafe_b64encode(digest).decode()[:22]}"


def test_the_id_in_a_token_is_masked_not_the_readers_number(signer: LinkSigner) -> None:
    """Links (and List-Unsubscribe) must not show a reader's number in the list."""
    tokens = {number: signer.sign(Purpose.UNSUBSCRIBE, number) for number in range(1, 200)}
    bodies = [token.split(".")[0][1:] for token in tokens.values()]
    assert len(set(bodies)) == len(bodies)
    for number, token in tokens.items():
        assert token.split(".")[0][1:] != _base36(number)
        assert signer.verify(Purpose.UNSUBSCRIBE, token) == number
    # consecutive numbers give unrelated masks: no order, no common prefix to count readers by
    assert bodies != sorted(bodies)
    assert len({body[:3] for body in bodies}) > 150
    # another key masks the same number differently
    other = LinkSigner(b"o" * 32).sign(Purpose.UNSUBSCRIBE, 5)
    assert other.split(".")[0] != signer.sign(Purpose.UNSUBSCRIBE, 5).split(".")[0]


@pytest.mark.parametrize("number", [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1])
def test_masking_is_a_permutation_of_64_bit_ids(number: int) -> None:
    mask = IdMask(b"m" * 32)
    masked = mask.mask(number)
    assert 0 <= masked < 2**64
    assert mask.unmask(masked) == number


def test_tokens_of_the_first_version_in_sent_emails_still_work(signer: LinkSigner) -> None:
    for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES):
        old = _first_version_token(purpose, 41)
        assert old.startswith(purpose.value[0] + "15.")
        assert signer.verify(purpose, old) == 41
    with pytest.raises(TokenError, match="signature"):  # its id can still not be changed
        signer.verify(
            Purpose.UNSUBSCRIBE, "u16" + _first_version_token(Purpose.UNSUBSCRIBE, 41)[3:]
        )


def test_tampered_tokens_are_rejected(signer: LinkSigner) -> None:
    token = signer.sign(Purpose.UNSUBSCRIBE, 41)
    body, issued, signature = token.split(".")
    other_body = signer.sign(Purpose.UNSUBSCRIBE, 42).split(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (
        f"{other_body}.{issued}.{signature}",  # id 42's masked id with 41's signature
        f"{body}.{issued}.{flipped}",
        f"{body}.{issued}1.{signature}",
        token + "x",
        token[:-1],
        "",
        "garbage",
        token.replace(".", "-"),
    ):
        with pytest.raises(TokenError):
            signer.verify(Purpose.UNSUBSCRIBE, bad)


def test_a_token_from_another_key_is_forged(signer: LinkSigner) -> None:
    forged = LinkSigner(b"x" * 32).sign(Purpose.UNSUBSCRIBE, 5)
    with pytest.raises(TokenError, match="signature"):
        signer.verify(Purpose.UNSUBSCRIBE, forged)


def test_confirm_tokens_expire_after_max_age(signer: LinkSigner) -> None:
    token = signer.sign(Purpose.CONFIRM, 9, now=SENT)
    assert signer.verify(Purpose.CONFIRM, token, now=SENT + timedelta(days=6, hours=23)) == 9
    with pytest.raises(TokenError, match="expired"):
        signer.verify(Purpose.CONFIRM, token, now=SENT + timedelta(days=7, seconds=1))
    shorter = LinkSigner(KEY, confirm_max_age=timedelta(hours=1))
    with pytest.raises(TokenError, match="expired"):
        shorter.verify(Purpose.CONFIRM, token, now=SENT + timedelta(hours=2))


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.PREFERENCES])
def test_unsubscribe_and_preferences_never_expire(signer: LinkSigner, purpose: Purpose) -> None:
    token = signer.sign(purpose, 9, now=SENT)
    assert signer.verify(purpose, token, now=SENT + timedelta(days=61)) == 9
    assert signer.verify(purpose, token, now=SENT + timedelta(days=3650)) == 9


def test_key_file_is_created_0600_beside_the_database_and_reused(settings: Settings) -> None:
    key_file = settings.root / "subscribers" / ".secret_key"
    assert not key_file.exists()
    first = load_signer(settings)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = first.sign(Purpose.UNSUBSCRIBE, 3)
    again = load_signer(load_settings(settings.root, env={}))
    assert again.verify(Purpose.UNSUBSCRIBE, token) == 3
    assert not list(key_file.parent.glob("*.tmp"))


def test_environment_key_wins_over_the_key_file(settings: Settings) -> None:
    from_file = load_signer(settings)
    env = {"NEWSLETTER_SECRET_KEY": "an-environment-secret-of-some-length"}
    from_env = load_signer(load_settings(settings.root, env=env))
    token = from_env.sign(Purpose.UNSUBSCRIBE, 3)
    with pytest.raises(TokenError):
        from_file.verify(Purpose.UNSUBSCRIBE, token)
    assert LinkSigner(env["NEWSLETTER_SECRET_KEY"].encode()).verify(Purpose.UNSUBSCRIBE, token) == 3


def test_a_short_environment_key_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: too short"):
        load_signer(dataclasses.replace(settings, secret_key="short"))


def test_non_sqlite_database_needs_the_environment_key(settings: Settings) -> None:
    remote = dataclasses.replace(settings, database_url="postgresql://db.example.org/newsletter")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: not set"):
        load_signer(remote)
    assert load_signer(dataclasses.replace(remote, secret_key="s" * 32)).sign(Purpose.CONFIRM, 1)


def test_confirm_max_age_comes_from_schedule_yaml(project: Path, clean_env: None) -> None:
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"confirm_max_age: 7d", "confirm_max_age: 48h", text), "utf-8")
    signer = load_signer(load_settings(project, env={}))
    assert signer.confirm_max_age == timedelta(hours=48)
    path.write_text(re.sub(r"confirm_max_age: 7d", "confirm_max_age: soon", text), "utf-8")
    with pytest.raises(ConfigError, match=r"schedule.yaml:\d+: `links.confirm_max_age`"):
        load_settings(project, env={})


def test_an_empty_key_file_is_a_config_error(settings: Settings) -> None:
    key_file = settings.root / "subscribers" / ".secret_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match=r"\.secret_key"):
        load_signer(settings)


HMAC_KEYS = [
    b"",
    b"k",
    b"k" * 16,
    bytes(range(32)),
    b"\xff" * 63,
    b"x" * 64,  # exactly one SHA-256 block
    b"y" * 65,  # one byte over: hashed first (RFC 2104)
    b"another key of some length" * 5,
    bytes(range(256)) * 2,
]
HMAC_MESSAGES = [b"", b"a", b"u1f.t4x2kq", bytes(range(256)), b"m" * 1000]


@pytest.mark.parametrize("key", HMAC_KEYS, ids=lambda key: f"key{len(key)}")
def test_fast_hmac_equals_hmac_sha256(key: bytes) -> None:
    """The precomputed-pad HMAC equals the standard library's, for short, long and empty input."""
    fast = FastHmac(key)
    for message in HMAC_MESSAGES:
        assert fast.digest(message) == hmac.new(key, message, hashlib.sha256).digest()
    assert fast.digest(b"a") == fast.digest(b"a")  # the prepared states are not consumed


def test_fast_hmac_differs_by_key_and_message() -> None:
    """A check that the comparison above can fail: other keys and messages give other digests."""
    assert FastHmac(b"x" * 64).digest(b"a") != FastHmac(b"x" * 65).digest(b"a")
    assert FastHmac(b"k").digest(b"") != FastHmac(b"k").digest(b"\0")


@pytest.mark.parametrize("key", [b"k" * 16, b"another key of some length" * 5])
def test_fast_token_signing_is_plain_hmac_sha256(key: bytes) -> None:
    """A token's signature is HMAC-SHA256 under the derived link key, truncated: key for key."""
    signer = LinkSigner(key)
    token = signer.sign(Purpose.UNSUBSCRIBE, 123456789)
    body, _, signature = token.rpartition(".")
    link_key = hmac.new(key, b"newsletter link tokens v1", hashlib.sha256).digest()
    expected = hmac.new(link_key, body.encode(), hashlib.sha256).digest()[:16]
    assert signature == base64.urlsafe_b64encode(expected).decode()[:22]
    assert signer.verify(Purpose.UNSUBSCRIBE, token) == 123456789
