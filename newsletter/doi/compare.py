"""An issue's articles against their DOIs' records: findings for ``check``, ``send``, the scheduler.

First author's surname, year, title (normalised, fuzzy) and journal are compared with the
Citation line; a mismatch is a warning there, with the expected reference. A retraction is an
error naming the notice; a correction or an expression of concern is a warning. Records come from
the store; with a ``Client`` the missing ones are fetched (and stored), and with ``refresh`` every
one is fetched again: an unreachable network is one warning, never an error.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.codes import CODES
from newsletter.doi.faults import NotFound, Unreachable
from newsletter.doi.record import CONCERN, Record
from newsletter.doi.store import MetadataStore
from newsletter.models import Article, Finding, Issue

if TYPE_CHECKING:
    from newsletter.doi.client import Client

TITLE_SIMILARITY = 0.85  # difflib ratio of the normalised titles


@dataclass
class DoiCheck:
    """The findings of an issue's DOIs, and what was looked up."""

    findings: list[Finding] = field(default_factory=list)
    records: dict[str, Record] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)  # DOIs without a record
    offline: str | None = None  # why the network was not used, when it failed

    @property
    def has_errors(self) -> bool:
        return any(finding.is_error for finding in self.findings)

    @property
    def retracted(self) -> list[str]:
        return [doi for doi, record in self.records.items() if record.retractions]


def check_issue_dois(
    issue: Issue,
    store: MetadataStore,
    *,
    path: str,
    client: Client | None = None,
    refresh: bool = False,
) -> DoiCheck:
    """Compare each article having a DOI with its record (see the module's docstring)."""
    result = DoiCheck()
    articles = [article for article in issue.articles if article.doi]
    for article in articles:
        doi = article.doi or ""
        record = store.get(doi)
        if client is not None and result.offline is None and (refresh or record is None):
            try:
                fetched = client.record(doi)
            except NotFound:
                if record is not None:  # known before: a passing fault of the index, keep it
                    result.records[doi] = record
                    result.findings.extend(compare_article(article, record, path))
                    continue
                result.findings.append(
                    _finding(
                        path,
                        article.citation_line or article.line,
                        "doi-not-found",
                        f"the DOI {doi} does not resolve: Crossref does not know it",
                    )
                )
                continue
            except Unreachable as err:
                result.offline = str(err)
            else:
                store.put(fetched)
                record = fetched
        if record is None:
            result.unchecked.append(doi)
            continue
        result.records[doi] = record
        result.findings.extend(compare_article(article, record, path))
    if result.unchecked or (refresh and result.offline):
        result.findings.append(_not_checked(path, result, store))
    return result


def _not_checked(path: str, result: DoiCheck, store: MetadataStore) -> Finding:
    """One warning for the file: which DOIs went unchecked and why; when the records date from."""
    count = len(result.unchecked)
    parts = []
    if count:
        why = (
            f"no network ({result.offline})"
            if result.offline
            else ("no stored record (run `newsletter doi refresh`)")
        )
        parts.append(f"{count} DOI{'s' if count != 1 else ''} not checked: {why}")
    if result.offline and result.records:
        stamps = sorted(r.fetched_at for r in result.records.values() if r.fetched_at)
        when = f"last checked {stamps[0]}" if stamps else "written by hand, never fetched"
        online = f"no network ({result.offline}); " if not count else ""
        parts.append(f"not checked online: {online}the stored records were {when}")
    return _finding(path, 0, "doi-not-checked", "; ".join(parts))


def compare_article(article: Article, record: Record, path: str) -> list[Finding]:
    """The findings of one article: a mismatched citation, a retraction, notices."""
    line = article.citation_line or article.line
    findings = []
    for retraction in record.retractions:
        findings.append(
            _finding(
                path,
                line,
                "retracted",
                f"the article {record.doi} was retracted (notice {retraction.doi}, "
                f"{retraction.date or 'undated'}): remove it or say so in the summary",
            )
        )
    for notice in record.notices:
        code = "expression-of-concern" if notice.kind == CONCERN else "corrected"
        what = "an expression of concern" if notice.kind == CONCERN else "a correction"
        findings.append(
            _finding(
                path,
                line,
                code,
                f"the article {record.doi} has {what} (notice {notice.doi}, "
                f"{notice.date or 'undated'}): the email shows a notice linking to it",
            )
        )
    problems = mismatches(article.citation, record)
    if problems:
        findings.append(
            _finding(
                path,
                line,
                "citation-mismatch",
                f"the Citation does not match the DOI's record ({'; '.join(problems)}); "
                f"expected: {expected_reference(record)}",
            )
        )
    return findings


def mismatches(citation: str, record: Record) -> list[str]:
    """What of the first author, year, title and journal disagrees with the record."""
    text = _norm(citation)
    problems = []
    if record.authors:
        surname = _norm(record.authors[0].family)
        if surname and not text.startswith(surname):
            problems.append(f'first author "{record.authors[0].family}"')
    if record.year is not None:
        years = re.findall(r"\((\d{4})[a-z]?[,)]", citation)
        if not years or years[0] != str(record.year):
            problems.append(f"year {record.year}")
    if record.title and not _similar_title(citation, record.title):
        problems.append(f'title "{record.title}"')
    if record.journal and _norm(record.journal) not in text:
        problems.append(f'journal "{record.journal}"')
    return problems


def _similar_title(citation: str, title: str) -> bool:
    wanted = _norm(title)
    text = _norm(citation)
    if wanted in text:
        return True
    after_year = re.split(r"\(\d{4}[a-z]?[^)]*\)\.?", citation, maxsplit=1)
    segment = _norm(after_year[-1])[: len(wanted) + 10]
    matcher = difflib.SequenceMatcher(None, wanted, segment[: len(wanted)])
    return matcher.ratio() >= TITLE_SIMILARITY


def _norm(text: str) -> str:
    """Lower case, no accents, Markdown or punctuation; "&" is "and"; single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = text.replace("&", " and ").casefold()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def expected_reference(record: Record) -> str:
    """An APA-like reference from the record, for a mismatch message (``cite`` formats fully)."""
    names = [f"{a.family}, {_initials(a.given)}".rstrip(", ") for a in record.authors]
    if len(names) > 20:
        names = [*names[:19], "…", names[-1]]
    if len(names) > 1:
        names[-1] = f"& {names[-1]}"
    authors = (
        ", ".join(names)
        if len(names) > 2
        else " ".join(n if i else n + "," for i, n in enumerate(names))
        if len(names) == 2
        else (names[0] if names else "(no authors)")
    )
    year = record.year if record.year is not None else "n.d."
    return f"{authors} ({year}). {record.title.rstrip('.')}. {record.journal}."


def _initials(given: str) -> str:
    return " ".join(f"{part[0]}." for part in re.split(r"[\s.]+", given) if part)


def _finding(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path=path, line=line, severity=CODES[code].severity, message=message, code=code)
