"""The renderings of one issue's variants for a run: each rendered once, on first need, and kept.

A send renders the default variant (every article, the author's order) as always, and every
other variant its readers need through the same templates; variants other than the default are
checked like ``newsletter issues check`` checks the issue (an error refuses the send before
anything is claimed). Thread-safe: the send's stages ask from two threads.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable

from newsletter.checks import check_rendered
from newsletter.config import Settings
from newsletter.doi.record import Record
from newsletter.errors import SendError
from newsletter.models import Issue, RenderedIssue
from newsletter.render import doi_records, render_issue
from newsletter.variants import SKIP, Variants


class Renderings:
    """Variant key → ``RenderedIssue`` for one issue (None and the default key: the default)."""

    def __init__(self, settings: Settings, issue: Issue, default: RenderedIssue | None = None):
        self.settings = settings
        self.issue = issue
        self.variants = Variants(issue)
        self._lock = threading.Lock()
        self._done: dict[str, RenderedIssue] = {}
        if default is not None:
            self._done[self.variants.default] = default

    @property
    def default(self) -> RenderedIssue:
        return self.get(None)

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: str | None) -> RenderedIssue:
        """The rendering of variant ``key`` (rendered now if it is the first time)."""
        wanted = self.variants.default if key is None else key
        found = self._done.get(wanted)
        if found is not None:
            return found
        with self._lock:
            found = self._done.get(wanted)
            if found is None:
                found = self._render(wanted)
                self._done[wanted] = found
        return found

    def prepare(self, keys: Iterable[str]) -> None:
        """Render and check the variants ``keys`` ahead of a send; ``SendError`` on an error."""
        for key in keys:
            if key == SKIP:
                continue
            rendered = self.get(key)
            if key == self.variants.default:
                continue  # rendered exactly as always; `issues check` checks it
            errors = [f for f in check_rendered(rendered, path=str(self.issue.path)) if f.is_error]
            if errors:
                raise SendError(
                    f"variant {key} of {self.issue.month} does not pass the checks: "
                    + "; ".join(str(f) for f in errors)
                )

    def _render(self, key: str) -> RenderedIssue:
        variant = None if key == self.variants.default else self.variants.variant(key)
        return render_issue(
            self.issue,
            templates_dir=self.settings.templates_dir,
            sender=self.settings.sender,
            links=self.settings.links,
            variant=variant,
            lang=self.settings.site.lang,
            records=self._records,
        )

    @functools.cached_property
    def _records(self) -> dict[str, Record]:
        """The issue's DOI records, read once for all its variants."""
        return doi_records(self.issue)
