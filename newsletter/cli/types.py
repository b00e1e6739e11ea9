"""Argument types shared by the commands: an ISSUE (a month or a file), a month, a date and time.

A mistyped month is a usage error (exit 2) that says so, "not a month: use YYYY-MM", before any
file is looked up: ``check 2021-13`` should not answer that ``issues/2021-13.md`` does not exist.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from newsletter.values.month import EXAMPLE, MonthError, parse_month

if TYPE_CHECKING:  # generic for type checkers; not subscriptable at run time in every click 8
    _TextParam = click.ParamType[str]
    _MomentParam = click.ParamType[datetime]
else:
    _TextParam = _MomentParam = click.ParamType

# Text a person meant as a month: digits, a dash, digits ("2021-13", "2021-2", "21-02").
_MONTH_LIKE = re.compile(r"[0-9]{1,6}-[0-9]{1,3}")


def month_problem(text: str) -> str | None:
    """Why ``text`` is not a month ``YYYY-MM`` (one line for a usage error), or None if it is one."""
    try:
        parse_month(text)
    except MonthError:
        return f"{text!r} is not a month: use YYYY-MM, e.g. {EXAMPLE}{_detail(text)}"
    return None


def _detail(text: str) -> str:
    """What is wrong with a value of the right shape (``2021-13``, ``0000-01``)."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}", text) is None:
        return ""
    return " (there is no year 0000)" if text.startswith("0000") else " (the month is 01 to 12)"


def looks_meant_as_month(text: str) -> bool:
    """True for digits-dash-digits that is not an existing file: the person meant a month."""
    return _MONTH_LIKE.fullmatch(text) is not None and not Path(text).is_file()


class MonthParam(_TextParam):
    """A month ``YYYY-MM``; anything else is a usage error naming the expected form."""

    name = "month"

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str:
        return "YYYY-MM"  # click 8.2+ also passes ctx

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = month_problem(text)
        if problem is not None:
            self.fail(problem, param, ctx)
        return text


class IssueParam(_TextParam):
    """ISSUE: a month ``YYYY-MM`` (looked up in issues/) or the path of an issue file.

    Returned as given; a month-like value that is no month (``2021-13``) is a usage error.
    """

    name = "issue"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if looks_meant_as_month(text):
            problem = month_problem(text)
            if problem is not None:
                self.fail(problem, param, ctx)
        return text


class MomentParam(_MomentParam):
    """A local date/time (``2026-11-26T14:05``, ``2027-03-01``) or a month (its first day, 00:00).

    Returned naive unless the text gives an offset: the command applies the newsletter's time zone.
    """

    name = "datetime"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        if looks_meant_as_month(text):
            problem = month_problem(text)
            if problem is not None:
                self.fail(problem, param, ctx)
            text = f"{text}-01"
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"expected a date and time such as 2026-11-26T14:05 (or a month such as "
                f"2027-03), got {text!r}",
                param,
                ctx,
            )


MONTH = MonthParam()
ISSUE = IssueParam()
MOMENT = MomentParam()

ISSUE_HELP = "ISSUE is a month such as 2021-01 (looked up in issues/) or the path of an issue file."
