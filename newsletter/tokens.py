"""Signed, purpose-scoped link tokens for unsubscribe, confirm and preferences links.

A token is ``<purpose letter><masked subscriber id>.<issued at>.<signature>`` (ids and times in
base 36, the signature a truncated HMAC-SHA256, URL-safe base64), e.g. ``U3k9f0q2m1x.t4x2kq.Zk3…``:
short, and cheap enough to make once per recipient of a million-address send. The id is masked by
a keyed permutation of 64-bit numbers (a four-round Feistel network over BLAKE2b), so a link, and
the ``List-Unsubscribe`` header that carries one, does not show the reader's number in the list.
Tokens of the first version (a lowercase letter and the plain id: ``u1f.…``), in emails already
sent, keep working. The purpose is part of the
signed text, so a token made for one purpose never works for another. Unsubscribe and
preferences links never expire (CASL wants unsubscribing to work at least 60 days after a send);
confirmation links expire after ``links.confirm_max_age``.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import hmac
import os
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsletter.config import Settings
from newsletter.errors import ConfigError, TokenError
from newsletter.values.clock import now_utc

KEY_FILE_NAME = ".secret_key"
MIN_SECRET_LENGTH = 16
_SIGNATURE_BYTES = 16  # 128 bits: forging one is out of reach, and the token stays short
_SIGNATURE_CHARS = 22  # base64 of 16 bytes without padding
_TOKEN_RE = re.compile(r"([a-zA-Z])([0-9a-z]{1,13})\.([0-9a-z]{1,13})\.([A-Za-z0-9_-]{22})")
_ID_LIMIT = 1 << 64  # masked ids are 64-bit numbers (SQLite and PostgreSQL ids fit in 63)
_SQLITE_FILE_RE = re.compile(r"^sqlite(?:\+\w+)?:///([^?]+)")


class Purpose(enum.StrEnum):
    """What a link does; a token signed for one purpose is refused for every other."""

    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"
    PREFERENCES = "preferences"

    @property
    def letter(self) -> str:
        return _LETTERS[self]


_LETTERS = {Purpose.UNSUBSCRIBE: "U", Purpose.CONFIRM: "C", Purpose.PREFERENCES: "P"}
_BY_LETTER = {letter: purpose for purpose, letter in _LETTERS.items()}
# The first version's letters: the id in plain base 36. Still verified, never made.
_BY_LETTER_V1 = {letter.lower(): purpose for purpose, letter in _LETTERS.items()}
_EXPIRING = frozenset({Purpose.CONFIRM})


_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAIRS36 = [a + b for a in _DIGITS36 for b in _DIGITS36]  # two digits per step: half the loops


def _base36(number: int) -> str:
    if number < 36:
        return _DIGITS36[number]
    text = ""
    while number >= 36:
        number, rest = divmod(number, 1296)
        text = _PAIRS36[rest] + text
    if number:
        text = _DIGITS36[number] + text
    return text.lstrip("0") or "0"


class FastHmac:
    """HMAC-SHA256 (RFC 2104) with the keyed inner and outer states computed once.

    A send signs two tokens per recipient; copying two prepared hash states is about twice as
    fast as ``hmac.new`` per message. tests/test_tokens.py checks it equals ``hmac.new``.
    """

    BLOCK = 64  # SHA-256's block size in bytes

    def __init__(self, key: bytes) -> None:
        if len(key) > self.BLOCK:  # RFC 2104: a key longer than a block is hashed first
            key = hashlib.sha256(key).digest()
        padded = key.ljust(self.BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 of ``message`` under the key given at construction."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class IdMask:
    """A keyed permutation of the numbers 0 … 2**64 - 1: a four-round Feistel network whose round
    function is keyed BLAKE2b. Without the key a masked id says nothing of the id, and two readers
    comparing theirs learn nothing of anyone else's; with it, ``unmask`` gives the id back.
    """

    ROUNDS = 4

    def __init__(self, key: bytes) -> None:
        self._rounds = [
            hashlib.blake2b(key=key, person=b"link-id-round" + bytes([number]), digest_size=4)
            for number in range(self.ROUNDS)
        ]

    def _f(self, number: int, half: int) -> int:
        state = self._rounds[number].copy()
        state.update(half.to_bytes(4, "big"))
        return int.from_bytes(state.digest(), "big")

    def mask(self, subscriber_id: int) -> int:
        left, right = subscriber_id >> 32, subscriber_id & 0xFFFFFFFF
        for number in range(self.ROUNDS):
            left, right = right, left ^ self._f(number, right)
        return (left << 32) | right

    def unmask(self, masked: int) -> int:
        left, right = masked >> 32, masked & 0xFFFFFFFF
        for number in reversed(range(self.ROUNDS)):
            left, right = right ^ self._f(number, left), left
        return (left << 32) | right


class LinkSigner:
    """Signs and verifies link tokens with one key (HMAC-SHA256, standard library only)."""

    def __init__(self, key: bytes, confirm_max_age: timedelta = timedelta(days=7)) -> None:
        if not key:
            raise ConfigError("the link signing key is empty")
        # A key derived for links only, so the same secret used elsewhere signs nothing here.
        link_key = hmac.new(key, b"newsletter link tokens v1", hashlib.sha256).digest()
        self._mac = FastHmac(link_key)
        self._ids = IdMask(hmac.new(key, b"newsletter link ids v2", hashlib.sha256).digest()[:32])
        self.confirm_max_age = confirm_max_age
        self._issued: tuple[int, str] = (-1, "")  # the last issue time and its base 36
        # A send signs two tokens per reader, one after the other: mask each id once.
        self._masked: tuple[int, str] = (-1, "")

    def _signature(self, body: str) -> str:
        digest = self._mac.digest(body.encode("ascii"))
        return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).decode("ascii")[
            :_SIGNATURE_CHARS
        ]

    def sign(self, purpose: Purpose, subscriber_id: int, *, now: datetime | None = None) -> str:
        """A URL-safe token that lets its bearer do ``purpose`` for ``subscriber_id``."""
        if not 0 <= subscriber_id < _ID_LIMIT:
            raise ValueError("subscriber ids are 0 to 2**64 - 1")
        issued = int(now.timestamp()) if now is not None else int(time.time())
        if self._issued[0] != issued:
            self._issued = (issued, _base36(issued))
        if self._masked[0] != subscriber_id:
            self._masked = (subscriber_id, _base36(self._ids.mask(subscriber_id)))
        body = f"{_LETTERS[purpose]}{self._masked[1]}.{self._issued[1]}"
        return f"{body}.{self._signature(body)}"

    def verify(self, purpose: Purpose, token: str, *, now: datetime | None = None) -> int:
        """The subscriber id a valid ``token`` was made for; ``TokenError`` otherwise."""
        token = token.strip() if isinstance(token, str) else ""
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise TokenError("this link is not valid (malformed token)")
        letter, id_text, issued_text, signature = match.groups()
        body = token[: -len(signature) - 1]
        if not hmac.compare_digest(self._signature(body), signature):
            raise TokenError("this link is not valid (bad signature)")
        made_for = _BY_LETTER.get(letter) or _BY_LETTER_V1.get(letter)
        if made_for is not purpose:
            raise TokenError(f"this link is not valid for {purpose.value} (made for {made_for})")
        if purpose in _EXPIRING:
            issued = datetime.fromtimestamp(int(issued_text, 36), UTC)
            current = now or now_utc()
            if current - issued > self.confirm_max_age:
                raise TokenError(f"this {purpose.value} link has expired; please ask for a new one")
        number = int(id_text, 36)
        if letter in _BY_LETTER_V1:  # a first-version token: the plain id
            return number
        if number >= _ID_LIMIT:
            raise TokenError("this link is not valid (malformed token)")
        return self._ids.unmask(number)


def key_file_for(database_url: str) -> Path | None:
    """Where the generated key lives for a SQLite file database (beside it); None otherwise."""
    match = _SQLITE_FILE_RE.match(database_url)
    if match is None or match.group(1) in (":memory:", ""):
        return None
    return Path(match.group(1)).parent / KEY_FILE_NAME


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the link signing key: {err}") from err
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{path}: the link signing key is empty or too short; delete the file to make a new "
            "one (links sent with the old key stop working) or set NEWSLETTER_SECRET_KEY"
        )
    return text.encode("ascii")


def _create_key_file(path: Path) -> None:
    """Write a new random key with mode 0600, atomically; keep the file if another process won.

    The mode is exactly 0600 whatever the umask, and a missing folder is created 0700.
    """
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the file exists: never overwrite a key that signed links already.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_key(settings: Settings) -> bytes:
    """The signing key: NEWSLETTER_SECRET_KEY, else a key file beside a SQLite database."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"NEWSLETTER_SECRET_KEY: too short; use at least {MIN_SECRET_LENGTH} random "
                'characters, e.g. from `python -c "import secrets; print(secrets.token_hex(32))"`'
            )
        return settings.secret_key.encode("utf-8")
    path = key_file_for(settings.database_url)
    if path is None:
        raise ConfigError(
            "NEWSLETTER_SECRET_KEY: not set; it is required unless the database is a SQLite file "
            "(then a key is generated beside it)"
        )
    if not path.exists():
        try:
            _create_key_file(path)
        except OSError as err:
            raise ConfigError(f"{path}: cannot create the link signing key: {err}") from err
    return _read_key_file(path)


def load_signer(settings: Settings) -> LinkSigner:
    """The project's ``LinkSigner``: its key (see ``load_key``) and ``links.confirm_max_age``."""
    return LinkSigner(load_key(settings), confirm_max_age=settings.links.confirm_max_age)
