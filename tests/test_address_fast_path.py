"""The address fast path gives exactly email_validator's answers on the addresses it takes.

Property tests with hypothesis: generated plain addresses and near-misses of them (a character
replaced, inserted or doubled; odd case; special-use and numeric TLDs; labels at their length
limits). For every string, ``normalise_address`` and ``email_validator`` agree on accepting it and
on the normalised value; whatever the fast path takes, email_validator accepts the same way.
"""

from __future__ import annotations

import email_validator
import pytest
from email_validator import EmailNotValidError, rfc_constants, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.values import address
from newsletter.values.address import AddressError, _fast, normalise_address

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
TRICKY = '.-@_ \t\n"(),:;<>[\\]éß\u00a0\u200b\uff20İK0aZ' + "xn--"

atoms = st.text(ATEXT, min_size=1, max_size=12)
locals_ = st.lists(atoms, min_size=1, max_size=4).map(".".join)
labels = st.text(LABEL_CHARS, min_size=1, max_size=12) | st.sampled_from(
    ["a" * 63, "a" * 64, "b" + "-" * 61 + "c", "xn--p1ai", "ab--cd", "a-b", "-a", "a-", "0"]
)
tlds = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8) | (
    st.sampled_from(
        ["com", "ORG", "test", "local", "localhost", "onion", "arpa", "invalid", "c0m", "123", "x"]
    )
)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]), st.lists(labels, min_size=0, max_size=4), tlds
)
plain = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    text = draw(plain)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["replace", "insert", "double", "case"]))
        char = draw(st.sampled_from(TRICKY))
        if how == "replace" and text:
            at = min(at, len(text) - 1)
            text = text[:at] + char + text[at + 1 :]
        elif how == "insert":
            text = text[:at] + char + text[at:]
        elif how == "double" and text:
            at = min(at, len(text) - 1)
            text = text[: at + 1] + text[at:]
        else:
            text = text.swapcase()
    return text


def _validator(text: str) -> str | None:
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _ours(text: str) -> str | None:
    try:
        return normalise_address(text)
    except AddressError:
        return None


def _same_answer(text: str) -> None:
    expected = _validator(text) if text.strip() else None
    assert _ours(text) == expected
    fast = _fast(text.strip())
    if fast is not None:
        assert fast == expected


@settings(max_examples=1500, deadline=None)
@given(plain)
@example("Person.Name@Example.COM")
@example("a@x.c")
@example("a@ab--cd.com")
@example("a@x.test")
@example("x" * 64 + "@example.com")
@example("x" * 65 + "@example.com")
@example("a@" + ".".join(["a" * 63] * 4) + ".com")
def test_plain_addresses_get_email_validators_answer(text: str) -> None:
    _same_answer(text)


@settings(max_examples=1500, deadline=None)
@given(near_misses())
@example("a..b@x.com")
@example(".a@x.com")
@example("a.@x.com")
@example("a@x..com")
@example("a@x.com.")
@example("a@-x.com")
@example("a@x-.com")
@example("a@x.co1")
@example("a@xn--p1ai.com")
@example("a@x_y.com")
@example("a@x.com\n")
@example('"a"@x.com')
@example("a@[127.0.0.1]")
@example("é@x.com")
@example("a@é.com")
def test_near_misses_get_email_validators_answer(text: str) -> None:
    _same_answer(text)


@given(st.text(max_size=40))
def test_any_text_gets_email_validators_answer(text: str) -> None:
    _same_answer(text)


@pytest.mark.parametrize(
    "text", ["reader@example.com", "First.Last+tag@Mail.Example.ORG", "a-b@sub-1.example.co"]
)
def test_common_addresses_take_the_fast_path(text: str) -> None:
    assert _fast(text) == _validator(text)
    assert _fast(text) is not None


def test_the_fast_path_uses_email_validators_limits_and_names() -> None:
    assert address.EMAIL_MAX_LENGTH == rfc_constants.EMAIL_MAX_LENGTH
    assert address.LOCAL_PART_MAX_LENGTH == rfc_constants.LOCAL_PART_MAX_LENGTH
    assert address.DOMAIN_MAX_LENGTH == rfc_constants.DOMAIN_MAX_LENGTH
    assert rfc_constants.DNS_LABEL_LENGTH_LIMIT == 63
    assert set(address.SPECIAL_USE_DOMAIN_NAMES) == set(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    assert not email_validator.TEST_ENVIRONMENT
    assert email_validator.GLOBALLY_DELIVERABLE
