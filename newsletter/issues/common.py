"""Shared pieces of the issue reader: topic names, the findings collector, YAML marks."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

from newsletter import markdown
from newsletter.codes import code_for
from newsletter.models import Finding, Severity

LINE_BREAKS = ("Cc", "Zl", "Zp")  # Unicode categories of control characters and line separators
MAX_FINDINGS = 200  # a file with more problems than this is not worth listing in full


# --- public helpers ------------------------------------------------------------------------------


def canonical_topic(name: str, topics: Sequence[str]) -> str | None:
    """The topic of ``topics`` that ``name`` means (case and spacing ignored), or None."""
    wanted = fold(name)
    return next((topic for topic in topics if fold(topic) == wanted), None)


def closest(name: str, choices: Sequence[str]) -> str | None:
    """The choice a misspelt ``name`` most likely meant ("Depresion" → "Depression and …")."""
    wanted = fold(name)
    if not wanted or len(wanted) > 100:
        return None
    scored = [(_similarity(wanted, fold(choice)), choice) for choice in choices]
    score, best = max(scored, default=(0.0, None), key=lambda pair: pair[0])
    return best if score >= 0.6 else None


# --- collecting findings -------------------------------------------------------------------------


class Report:
    """The findings of one file, sorted by line at the end; past ``limit`` they are only counted."""

    def __init__(self, path: str, limit: int = MAX_FINDINGS) -> None:
        self.path = path
        self.limit = limit
        self.findings: list[Finding] = []
        self.hidden: list[Finding] = []  # over the limit: counted, not shown

    def error(self, code: str, line: int, message: str) -> None:
        """Report an error of the registered ``code`` at ``line``."""
        self._add(Finding(self.path, max(line, 1), Severity.ERROR, message, code))

    def warning(self, code: str, line: int, message: str) -> None:
        """Report a warning of the registered ``code`` at ``line``."""
        self._add(Finding(self.path, max(line, 1), Severity.WARNING, message, code))

    def _add(self, finding: Finding) -> None:
        code_for(finding.code, finding.severity)  # a typo'd or mislevelled code fails loudly
        (self.hidden if self.full else self.findings).append(finding)

    @property
    def full(self) -> bool:
        """True once ``limit`` findings are collected: callers may skip costly suggestions."""
        return len(self.findings) >= self.limit

    @property
    def has_errors(self) -> bool:
        return any(finding.is_error for finding in (*self.findings, *self.hidden))

    def hint(self, name: str, choices: Sequence[str]) -> str:
        """' (did you mean "…"?)' for a misspelt name; nothing once the report is full."""
        return "" if self.full else hint(name, choices)

    def result(self) -> tuple[Finding, ...]:
        shown = sorted(self.findings, key=lambda finding: finding.line)
        if self.hidden:
            severity = Severity.ERROR if any(f.is_error for f in self.hidden) else Severity.WARNING
            line = self.hidden[0].line
            message = f"{len(self.hidden)} more findings not shown; fix the ones above first"
            shown.append(Finding(self.path, line, severity, message, "more-findings"))
        return tuple(shown)


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _similarity(wanted: str, candidate: str) -> float:
    """How alike two names are, whole or against one word of the candidate ("Depresion")."""
    whole = SequenceMatcher(None, wanted, candidate).ratio()
    words = re.findall(r"\w[\w-]*", candidate)
    part = max((SequenceMatcher(None, wanted, word).ratio() for word in words), default=0.0)
    return max(whole, 0.9 * part)


def hint(name: str, choices: Sequence[str]) -> str:
    match = closest(name, choices)
    return f' (did you mean "{match}"?)' if match else ""


def short(text: str, limit: int = 60) -> str:
    text = "".join(char if unicodedata.category(char) != "Cc" else " " for char in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_line_break(text: str) -> bool:
    return any(unicodedata.category(char) in LINE_BREAKS for char in text)


def yaml_line(err: Exception, first: int, last: int) -> int:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line = first + mark.line if mark is not None else first
    return min(max(line, first), last)


def yaml_problem(err: Exception, first_line: int | None = None) -> str:
    """YAML's own description of a syntax error, on one line, with where the construct began."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    problem = " ".join(str(getattr(err, "problem", None) or err).split())
    context, mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and mark is not None and first_line is not None:
        problem += f" ({context}, from line {first_line + mark.line})"
    return problem


def display(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def check_inline_links(report: Report, text: str, line: int) -> None:
    """Report every link of one line of inline Markdown that is unsafe or empty."""
    for link in markdown.links(text):
        if not markdown.is_safe_url(link.url):
            code, message = link_problem(link.url)
            report.error(code, line, message)


def link_problem(url: str) -> tuple[str, str]:
    """The code and message of a link that is not allowed."""
    if not url:
        return "empty-link", "a link without an address"
    return (
        "unsafe-link",
        f'link "{short(url)}" is not allowed: use an https:, http: or mailto: address',
    )
