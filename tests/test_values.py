"""The leaf value modules (month ``YYYY-MM``, DOI, email address, clock), and that they stay leaves."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from newsletter.values.address import AddressError, normalise_address
from newsletter.values.clock import as_utc, aware, now_utc
from newsletter.values.doi import DoiError, doi_url, parse_doi
from newsletter.values.month import (
    MonthError,
    first_day,
    format_month,
    is_month,
    looks_like_month,
    parse_month,
)

VALUES = Path(__file__).resolve().parent.parent / "newsletter" / "values"


@pytest.mark.parametrize(
    ("text", "parts"), [("2021-01", (2021, 1)), ("1999-12", (1999, 12)), ("0001-06", (1, 6))]
)
def test_parse_month_accepts_real_months(text: str, parts: tuple[int, int]) -> None:
    assert parse_month(text) == parts
    assert is_month(text)
    assert format_month(*parts) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2021-13", "the month must be 01 to 12"),
        ("2021-00", "the month must be 01 to 12"),
        ("0000-01", "the year 0000 does not exist"),
        ("2021-1", "write YYYY-MM, e.g. 2021-01"),
        ("21-01", "write YYYY-MM"),
        ("2021-01\n", "write YYYY-MM"),
        (" 2021-01", "write YYYY-MM"),
        ("２０２１-０１", "write YYYY-MM"),  # full-width digits are not ASCII
        ("", "write YYYY-MM"),
        ("draft", "write YYYY-MM"),
    ],
)
def test_parse_month_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(MonthError, match=problem) as caught:
        parse_month(text)
    assert str(caught.value).startswith(f'"{text[:40]}" is not a month')
    assert not is_month(text)


def test_looks_like_month_is_the_shape_only() -> None:
    """A command argument shaped like a month is looked up as one, even an impossible one."""
    assert looks_like_month("2021-13")
    assert not looks_like_month("issues/2021-01.md")
    assert not looks_like_month("2021-01\n")


def test_first_day_and_format_month() -> None:
    assert first_day("2020-11") == date(2020, 11, 1)
    with pytest.raises(MonthError):
        format_month(2021, 13)
    with pytest.raises(MonthError):
        first_day("2020-1")


def test_doi_round_trip_and_error() -> None:
    assert parse_doi(" https://doi.org/10.1002/cpp.2509 ") == "10.1002/cpp.2509"
    assert doi_url("10.1000/a<b>") == "https://doi.org/10.1000/a%3Cb%3E"
    with pytest.raises(DoiError, match="is not a DOI"):
        parse_doi("11.1002/cpp")
    assert issubclass(DoiError, ValueError)


def test_normalise_address_trims_and_lowercases_only_the_domain() -> None:
    assert normalise_address("  Ann.Lee@Example.ORG \n") == "Ann.Lee@example.org"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "the email address is empty"),
        (None, "the email address is empty"),
        ("ann", "'ann' is not a valid email address: .*@-sign"),
        ("ann@localhost", "period"),
        ("a b@x.org", "SPACE"),
    ],
)
def test_normalise_address_says_why(raw: str | None, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        normalise_address(raw)
    assert issubclass(AddressError, ValueError)  # config's checks turn ValueError into a message


def test_a_huge_address_is_shortened_in_the_message() -> None:
    with pytest.raises(AddressError) as refused:
        normalise_address("x" * 5000 + "@example.org")
    assert len(str(refused.value)) < 300


def test_now_utc_is_aware_and_current() -> None:
    now = now_utc()
    assert now.tzinfo is UTC
    assert abs(datetime.now(UTC) - now) < timedelta(seconds=5)


def test_aware_reads_a_naive_stored_time_as_utc_and_keeps_an_aware_one() -> None:
    """SQLite hands back naive datetimes; PostgreSQL aware ones in the session's zone."""
    naive = datetime(2021, 1, 5, 14, 0)
    toronto = datetime(2021, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert aware(naive) == datetime(2021, 1, 5, 14, 0, tzinfo=UTC)
    assert aware(toronto) is toronto
    assert aware(None) is None


def test_as_utc_converts_an_aware_time() -> None:
    toronto = datetime(2021, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    converted = as_utc(toronto)
    assert converted == toronto and converted.tzinfo is UTC and converted.hour == 14
    assert as_utc(datetime(2021, 1, 5, 14, 0)) == datetime(2021, 1, 5, 14, 0, tzinfo=UTC)
    assert as_utc(None) is None


@pytest.mark.parametrize("module", sorted(path.name for path in VALUES.glob("*.py")))
def test_value_modules_import_nothing_of_ours_but_errors(module: str) -> None:
    """Leaves: importing models, issues or the CLI here would bring back import cycles."""
    tree = ast.parse((VALUES / module).read_text(encoding="utf-8"))
    ours = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            ours.add(node.module)
        elif isinstance(node, ast.Import):
            ours.update(alias.name for alias in node.names)
    assert {name for name in ours if name.startswith("newsletter")} <= {"newsletter.errors"}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("newsletter.values.month", {"newsletter", "newsletter.values", "newsletter.values.month"}),
        ("newsletter.values.doi", {"newsletter", "newsletter.values", "newsletter.values.doi"}),
        ("newsletter.values.clock", {"newsletter", "newsletter.values", "newsletter.values.clock"}),
        (
            "newsletter.values.address",
            {"newsletter", "newsletter.values", "newsletter.values.address"},
        ),
        (
            "newsletter.models",
            {"newsletter", "newsletter.values", "newsletter.values.doi", "newsletter.models"},
        ),
    ],
)
def test_importing_a_leaf_loads_nothing_else_of_ours(module: str, allowed: set[str]) -> None:
    """models used to import newsletter.issues for DOIs (a hidden models <-> issues cycle)."""
    code = (
        f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('newsletter')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert set(ast.literal_eval(loaded)) == allowed
