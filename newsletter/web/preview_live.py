"""Notice a save of the preview's files within a tick, and tell every open page (``/events``).

``WatchedFiles`` stats the issue file, the topics file and every template (cheap: a few dozen
``stat`` calls) and hashes their contents only when a stat changed, or once a second in case a
save kept the size and fell in the same mtime tick. ``Versions`` numbers each new content (the
number starts from the clock, so a page that outlived a restarted server still sees a change).
``Broadcast`` hands the number published last to every waiting server-sent-events stream.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

RECHECK_S = 1.0  # hash the contents at least this often, whatever the stats say

_Stat = tuple[str, int, int, int, int] | tuple[str]


@dataclass(frozen=True)
class Version:
    """One content of the watched files: a number that grows with each change, and its hash."""

    number: int
    fingerprint: str


class WatchedFiles:
    """Some files and every file under some folders (a missing one counts as a content too)."""

    def __init__(self, files: Sequence[Path], folders: Sequence[Path]) -> None:
        self.files = tuple(files)
        self.folders = tuple(folders)

    def paths(self) -> list[Path]:
        found = list(self.files)
        for folder in self.folders:
            found += sorted(_walk(folder))
        return found

    def stats(self) -> tuple[_Stat, ...]:
        """What ``stat`` says of every file: changes with any save (but see ``RECHECK_S``)."""
        return tuple(_stat(path) for path in self.paths())

    def fingerprint(self) -> str:
        """A hash of every file's name and contents."""
        digest = hashlib.blake2b(digest_size=12)
        for path in self.paths():
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing\0")
        return digest.hexdigest()


def _walk(folder: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        elif entry.is_file():
            yield Path(entry.path)


def _stat(path: Path) -> _Stat:
    try:
        found = path.stat()
    except OSError:
        return (str(path),)
    return (str(path), found.st_mtime_ns, found.st_size, found.st_ino, found.st_ctime_ns)


class Versions:
    """The current ``Version`` of some files, brought up to date by ``refresh()``."""

    def __init__(self, files: WatchedFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stats = files.stats()
        self._hashed = time.monotonic()
        self._current = Version(int(time.time() * 1000), files.fingerprint())

    @property
    def current(self) -> Version:
        return self._current

    def refresh(self) -> Version:
        """The version now: a stat of each file, and a hash when one changed (or once a second)."""
        with self._lock:
            stats = self.files.stats()
            now = time.monotonic()
            if stats == self._stats and now - self._hashed < RECHECK_S:
                return self._current
            self._stats, self._hashed = stats, now
            fingerprint = self.files.fingerprint()
            if fingerprint != self._current.fingerprint:
                self._current = Version(self._current.number + 1, fingerprint)
            return self._current


class Broadcast:
    """The version last published, for any number of streams waiting for the next one."""

    def __init__(self, first: Version) -> None:
        self._changed = threading.Condition()
        self._published = first
        self._closed = False

    @property
    def published(self) -> Version:
        return self._published

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, version: Version) -> None:
        with self._changed:
            self._published = version
            self._changed.notify_all()

    def wait_past(self, number: int, timeout: float) -> Version | None:
        """The published version once its number differs from ``number``; None on timeout/close."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._closed or self._published.number != number, timeout
            )
            if self._closed or self._published.number == number:
                return None
            return self._published

    def close(self) -> None:
        """Wake every stream for good: the server is stopping."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
