"""The outbox transport: every message written to a local Maildir that mail clients can open.

The default in the shipped ``schedule.yaml``, so a fresh checkout "sends" with no account
anywhere. Each message is written to ``tmp/`` and renamed into ``new/`` (the Maildir way), so a
reader never sees half a message.

The messages hold readers' addresses: the folders this transport creates are 0700 and every
message file 0600, whatever the umask. A run killed mid-write leaves a half-written file in
``tmp/``; the next run removes it (see ``sweep_tmp``).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from newsletter.config import Section
from newsletter.delivery.base import DeliveryResult, Transport, not_built
from newsletter.delivery.registry import Provider
from newsletter.delivery.template import TemplateCache
from newsletter.errors import PermanentDeliveryError
from newsletter.mime import check_message
from newsletter.models import OutgoingMessage, Recipient
from newsletter.values.clock import now_utc

log = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700
# Maildir's convention: a file in tmp/ this old is debris, whoever wrote it.
TMP_MAX_AGE = 36 * 3600.0
_COUNTER = itertools.count(1)
_HOST = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
# Our own unique names (those of Python's ``mailbox`` too): <seconds>.M<µs>P<pid>Q<n>.<host>
_NAME_RE = re.compile(r"^\d+\.M\d+P(?P<pid>\d+)Q\d+\.(?P<host>.+)$")


@dataclass(frozen=True)
class OutboxSettings:
    """``delivery.outbox:`` in schedule.yaml."""

    path: Path  # a Maildir


def parse_settings(section: Section, root: Path, env: Mapping[str, str]) -> OutboxSettings:
    """``delivery.outbox.path`` (default ``outbox``), relative to the project folder."""
    section.expect("path")
    return OutboxSettings(path=root / str(section.text("path", "outbox")))


PROVIDER = Provider(
    "outbox",
    "newsletter.delivery.outbox:OutboxTransport",
    settings=parse_settings,
    title="the outbox",
)


def _unique_name() -> str:
    now = time.time()
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_COUNTER)}.{_HOST}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _left_behind(path: Path, now: float) -> bool:
    """A file in tmp/ that no running writer will finish: its process is gone, or it is old."""
    match = _NAME_RE.match(path.name)
    if match is not None and match.group("host") == _HOST:
        pid = int(match.group("pid"))
        if pid != os.getpid() and not _running(pid):
            return True
    try:
        return now - path.stat().st_mtime > TMP_MAX_AGE
    except FileNotFoundError:
        return False


def sweep_tmp(maildir: Path, now: float | None = None) -> list[Path]:
    """Remove the half-written files earlier runs left in ``maildir/tmp``; return them.

    A file goes when the process that wrote it (named in the file's name, on this host) no
    longer runs, or when it is older than 36 hours (the Maildir convention, for files from
    other hosts or writers). A writer still running keeps its file.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list((maildir / "tmp").iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.is_file() and _left_behind(entry, now):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    if removed:
        log.info("removed %d half-written file(s) from %s", len(removed), maildir / "tmp")
    return removed


def _private_folder(path: Path) -> None:
    """Create ``path`` 0700 (its missing parents as the umask says) unless it exists."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=FOLDER_MODE)
        os.chmod(path, FOLDER_MODE)  # exactly 0700, whatever the umask


class OutboxTransport(Transport):
    """Writes one file per recipient into ``settings.path`` (a Maildir: cur/, new/, tmp/)."""

    name: ClassVar[str] = "outbox"
    max_batch = 500

    def __init__(self, settings: OutboxSettings) -> None:
        self.path = Path(settings.path)
        self._open = False
        self._templates = TemplateCache(linesep="\n")  # LF line ends, as Maildir readers expect

    def open(self) -> None:
        """Create the Maildir (and its parents) if missing; clear debris from its tmp/."""
        if self.path.exists() and not self.path.is_dir():
            raise PermanentDeliveryError(
                f"delivery.outbox.path: {self.path} exists and is not a folder"
            )
        try:
            _private_folder(self.path)
            for folder in ("tmp", "new", "cur"):  # also completes an existing, empty folder
                _private_folder(self.path / folder)
            sweep_tmp(self.path)
        except OSError as err:
            raise PermanentDeliveryError(
                f"delivery.outbox.path: cannot create the Maildir {self.path}: {err.strerror}"
            ) from err
        self._open = True

    def close(self) -> None:
        self._open = False

    def send_batch(self, message: OutgoingMessage) -> list[DeliveryResult]:
        if not self._open:
            self.open()
        # Build every message first: a bad From or Subject refuses the batch before anything is
        # written; a reader whose own message cannot be built fails alone.
        check_message(message)
        now = now_utc()
        templates = self._templates.templates(message, now)
        built: list[tuple[Recipient, bytes]] = []
        failed: list[DeliveryResult] = []
        for recipient in message.recipients:
            try:
                built.append((recipient, templates.render(recipient, now)))
            except Exception as err:  # only this reader's message: the others still go
                failed.append(not_built(recipient, err))
        results: list[DeliveryResult] = []
        try:
            for recipient, data in built:
                key = self._add(data)
                results.append(DeliveryResult(recipient, accepted=True, provider_message_id=key))
            if results:
                # On disk before the run records them sent: one sync for the batch's files and
                # renames, none per message.
                sync_folder(self.path / "new")
        except OSError as err:
            self._discard(results)
            raise PermanentDeliveryError(
                f"cannot write to the outbox {self.path}: {err.strerror or err}"
            ) from err
        return [*results, *failed]

    def _add(self, data: bytes) -> str:
        """Write one message to tmp/ (0600), then rename it into new/; its name is the key."""
        key = _unique_name()
        written = self.path / "tmp" / key
        descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)  # exactly 0600, whatever the umask
                handle.write(data)
            os.rename(written, self.path / "new" / key)
        except BaseException:
            written.unlink(missing_ok=True)
            raise
        return key

    def _discard(self, results: list[DeliveryResult]) -> None:
        """Take back a failed batch's messages: a batch is written whole or not at all."""
        for result in results:
            if result.provider_message_id is not None:
                (self.path / "new" / result.provider_message_id).unlink(missing_ok=True)


def sync_folder(folder: Path) -> None:
    """Make the files written and renamed into ``folder`` durable: one call for all of them.

    ``syncfs`` (Linux) flushes the folder's file system once; elsewhere ``sync``.
    """
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        if _SYNCFS is not None:
            if _SYNCFS(descriptor) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        else:  # pragma: no cover - not Linux
            os.sync()
    finally:
        os.close(descriptor)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    return function


_SYNCFS = _load_syncfs()
