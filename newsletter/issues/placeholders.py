"""Placeholders: the ``[TODO: …]`` gaps ``newsletter new`` leaves for the author to fill in.

A placeholder is a warning while the issue is a ``draft`` (check lists what is left to write) and
an error once its status is ``ready``, so an issue with a gap is never built for sending or sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from newsletter.issues.common import Report, short
from newsletter.models import IssueStatus

PLACEHOLDER_RE = re.compile(r"\[TODO\b[^\]\n]*\]")


def placeholder(what: str) -> str:
    """The placeholder text asking for ``what``: ``[TODO: the email's subject]``."""
    return f"[TODO: {what}]"


def is_placeholder(text: str) -> bool:
    """True when ``text`` (a field's value) holds a placeholder."""
    return PLACEHOLDER_RE.search(text) is not None


def check_placeholders(
    lines: Iterable[tuple[int, str]], status: IssueStatus, report: Report
) -> None:
    """One finding for each line (file line number, text) that still holds a placeholder."""
    for number, line in lines:
        found = PLACEHOLDER_RE.search(line)
        if found is None:
            continue
        gap = short(found.group())
        if status is IssueStatus.READY:
            report.error(
                "placeholder-ready",
                number,
                f"{gap} is still to be written, and the issue is ready: fill it in "
                "(or set status: draft)",
            )
        else:
            report.warning("placeholder", number, f"to fill in: {gap}")
