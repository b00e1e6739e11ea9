"""One JSON file per DOI under ``issues/.metadata/``, kept in git: the records work offline.

The file name is the lower-cased DOI with ``/`` and other unsafe characters percent-encoded
(``10.1037%2Fpst0000165.json``); the JSON is sorted and indented so a refresh shows as a small diff.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from newsletter.doi.record import Record, from_json

FOLDER = ".metadata"


class MetadataStore:
    """The records of one project's issues: ``issues_dir/.metadata/<doi>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def beside(cls, issue_path: Path) -> MetadataStore:
        """The store of the issues folder holding ``issue_path``."""
        return cls(issue_path.parent / FOLDER)

    def path(self, doi: str) -> Path:
        return self.folder / (quote(doi.strip().lower(), safe="-._()") + ".json")

    def get(self, doi: str) -> Record | None:
        """The stored record of ``doi``; None when there is none or it cannot be read."""
        try:
            data = json.loads(self.path(doi).read_text(encoding="utf-8"))
            return from_json(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def records(self, dois: Iterable[str]) -> dict[str, Record]:
        """The stored records of ``dois``, keyed by the DOI as given (those without one left out)."""
        found = {}
        for doi in dois:
            record = self.get(doi)
            if record is not None:
                found[doi] = record
        return found

    def put(self, record: Record) -> Path:
        """Write ``record`` atomically (a temporary file renamed over the old one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(record.doi)
        text = json.dumps(record.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        handle, name = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return target
