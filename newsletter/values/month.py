"""The month an issue is for, ``YYYY-MM``: one parser for file names, arguments, URLs and folders.

A leaf module: it imports nothing of the package, so models, the issue reader, the CLI, the
archive and the web app can all use it without import cycles.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["MonthError", "first_day", "format_month", "is_month", "looks_like_month", "parse_month"]

EXAMPLE = "2021-01"
_SHAPE_RE = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only: "\d" takes any script's


class MonthError(ValueError):
    """Text that is not a month ``YYYY-MM``; the message says what is wrong with it."""


def looks_like_month(text: str) -> bool:
    """True for the shape ``NNNN-NN`` (a month, maybe impossible): a month rather than a path."""
    return _SHAPE_RE.fullmatch(text) is not None


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) of ``"YYYY-MM"``; MonthError naming the problem for anything else."""
    match = _SHAPE_RE.fullmatch(text)
    if match is None:
        raise MonthError(f'"{text[:40]}" is not a month: write YYYY-MM, e.g. {EXAMPLE}')
    year, number = int(match.group(1)), int(match.group(2))
    if year == 0:
        raise MonthError(f'"{text}" is not a month: the year 0000 does not exist')
    if not 1 <= number <= 12:
        raise MonthError(f'"{text}" is not a month: the month must be 01 to 12')
    return year, number


def is_month(text: str) -> bool:
    """True when ``text`` is a real month ``YYYY-MM`` (year 0001-9999, month 01-12)."""
    try:
        parse_month(text)
    except MonthError:
        return False
    return True


def format_month(year: int, number: int) -> str:
    """``"YYYY-MM"`` of a year and month number; MonthError when they are out of range."""
    text = f"{year:04d}-{number:02d}"
    parse_month(text)
    return text


def first_day(text: str) -> date:
    """The first day of the month ``text`` (``"2021-01"`` → 2021-01-01); MonthError if none."""
    year, number = parse_month(text)
    return date(year, number, 1)
