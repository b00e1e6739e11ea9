"""One variant's message as bytes with holes: headers and encoded bodies built once per variant.

``mime.build_message`` builds an ``EmailMessage`` per reader (the header registry, the content
manager, the generator: ~1 ms each). A ``MessageTemplate`` asks it once, for a probe reader, and
keeps what every reader shares as bytes: the shared headers (List-Id, Precedence, Feedback-ID …)
folded by the same policy, each part's headers, and each part's body quoted-printable as the
``email`` package encodes it, but for the lines holding a placeholder. A reader's message is
then the shared bytes with their own header lines (To, Date, Message-ID, List-Unsubscribe) and
the lines with their two links in them, encoded line by line as the ``email`` package does: the
same bytes, soft line breaks included, so no line is longer than 76 characters.

Parsed back, every header and part equals what ``build_message`` makes for the same reader
(tests/test_message_template.py, also with the hostile names of tests/test_names_in_headers.py);
the bodies are the same bytes.
Whatever the template cannot hold exactly it leaves to ``build_message``, reader by reader:
a non-ASCII address (an SMTPUTF8 message), a reader without a List-Unsubscribe link (test
copies), a link that is not plain ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from email import quoprimime
from email.message import MIMEPart
from email.policy import Policy
from email.utils import format_datetime

from newsletter.mime import AddressHeader, build_message, check_header
from newsletter.models import OutgoingMessage, Placeholder, Recipient

_PROBE_EMAIL = "probe@template.invalid"
_PROBE_ID = "<template-probe@template.invalid>"
# Per-reader header values we write ourselves when they are this plain (no folding needed).
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+")
_LINE_LIMIT = 78
_PER_READER = frozenset({"to", "date", "message-id", "list-unsubscribe"})


class _Line:
    """A body line with a reader's link in it, quoted-printable encoded for each reader.

    The encoder knows nothing across lines, so encoding this line alone gives the bytes that
    encoding the whole body would: soft line breaks where the ``email`` package puts them.
    """

    __slots__ = ("line", "linesep", "links", "width")

    def __init__(self, line: bytes, width: int, linesep: bytes) -> None:
        self.line, self.width, self.linesep = line, width, linesep
        self.links = [(raw, p) for raw, p in _PLACEHOLDER_OF.items() if raw in line]

    def encode(self, subs: Mapping[Placeholder, str]) -> bytes:
        line = self.line
        for raw, placeholder in self.links:
            line = line.replace(raw, subs[placeholder].encode("ascii"))
        encoded = quoprimime.body_encode(line.decode("latin-1"), self.width, eol="\n")
        return encoded.encode("ascii").replace(b"\n", self.linesep) + self.linesep


Piece = bytes | str | _Line  # shared bytes, a per-reader header (its lower-case name), a link line


class MessageTemplate:
    """The bytes of one variant's message for any reader, in the layout of ``policy``."""

    def __init__(
        self, message: OutgoingMessage, *, date: datetime, linesep: str | None = None
    ) -> None:
        """The template of ``message`` for any reader (``build_message`` encodes every part
        quoted-printable, so the readers' links do not change the encoding)."""
        self.message = message
        self.date = date
        probe = Recipient(
            subscriber_id=None,
            email=_PROBE_EMAIL,
            name=None,
            substitutions={p: p.value for p in Placeholder},
            message_id=_PROBE_ID,
            list_unsubscribe_url="https://template.invalid/u",
        )
        mail = build_message(message, probe, date=date)
        mail.as_bytes()  # the generator draws the multipart boundary (once, for every reader)
        self.policy: Policy = mail.policy if linesep is None else mail.policy.clone(linesep=linesep)
        self._nl = self.policy.linesep
        self._pieces: list[Piece] = []
        self.exact = True  # False: a part is not quoted-printable; every reader is built anew
        self._dates: tuple[str, bytes] = ("", b"")  # the last Date value and its line
        self._write_headers(mail, top=True)
        if mail.is_multipart():
            boundary = mail.get_boundary()
            assert boundary is not None
            parts = list(mail.iter_parts())
            texts = [message.text, message.html or ""]  # build_message: text first, HTML second
            for number, part in enumerate(parts):
                lead = "" if number == 0 else self._nl
                self._add(f"{lead}--{boundary}{self._nl}".encode("ascii"))
                self._write_headers(part, top=False)
                self._write_body(part, texts[number])
            self._add(f"{self._nl}--{boundary}--{self._nl}".encode("ascii"))
        else:
            self._write_body(mail, message.text)

    # --- building the template ------------------------------------------------------------

    def _add(self, piece: Piece) -> None:
        if isinstance(piece, bytes) and self._pieces and isinstance(self._pieces[-1], bytes):
            self._pieces[-1] += piece
        else:
            self._pieces.append(piece)

    def _write_headers(self, part: MIMEPart, *, top: bool) -> None:
        for name, value in part.raw_items():
            key = name.lower()
            if top and key in _PER_READER:
                self._add(key)
            else:
                self._add(self.policy.fold_binary(name, value))
        self._add(self._nl.encode("ascii"))

    def _write_body(self, part: MIMEPart, text: str) -> None:
        """The part's body as the ``email`` package encodes ``text``, cut at the placeholders."""
        if str(part.get("Content-Transfer-Encoding", "")).lower() != "quoted-printable":
            self.exact = False  # not the encoding build_message chooses: build every reader
            return
        self._write_quoted_printable(part, text)

    def _write_quoted_printable(self, part: MIMEPart, text: str) -> None:
        """Encoded as the ``email`` package encodes the whole text (line by line, as it does),
        each line with a link kept to be encoded with the reader's link in it."""
        width = self.policy.max_line_length or 76
        nl = self._nl.encode("ascii")
        shared: list[bytes] = []
        for line in _normal_body(text, part).split(b"\n")[:-1]:
            if _PLACEHOLDERS_BYTES.search(line) is None:
                shared.append(line)
                continue
            self._add_encoded(shared, width)
            shared = []
            self._add(_Line(line, width, nl))
        self._add_encoded(shared, width)

    def _add_encoded(self, lines: list[bytes], width: int) -> None:
        if lines:
            body = b"\n".join(lines).decode("latin-1") + "\n"
            encoded = quoprimime.body_encode(body, width, eol="\n")
            self._add(encoded.encode("ascii").replace(b"\n", self._nl.encode("ascii")))

    # --- one reader ---------------------------------------------------------------------------

    def fits(self, recipient: Recipient) -> bool:
        """Whether this reader's message can be made from the template (else ``build_message``)."""
        if not recipient.list_unsubscribe_url:
            return False
        if not (recipient.email.isascii() and recipient.message_id.isascii()):
            return False
        for value in recipient.substitutions.values():
            if not value.isascii() or "\r" in value or "\n" in value:
                return False
        return set(recipient.substitutions) == set(Placeholder)

    def render(self, recipient: Recipient, date: datetime | None = None) -> bytes:
        """The reader's message dated ``date`` (else the template's), as its policy writes it.

        ``MessageBuildError`` (or another error) when this reader's message cannot be built.
        """
        date = date or self.date
        if not self.exact or not self.fits(recipient):
            mail = build_message(self.message, recipient, date=date)
            return mail.as_bytes(policy=mail.policy.clone(linesep=self._nl))
        headers = self._headers(recipient, date)
        subs = recipient.substitutions
        out: list[bytes] = []
        for piece in self._pieces:
            if isinstance(piece, bytes):
                out.append(piece)
            elif isinstance(piece, _Line):
                out.append(piece.encode(subs))
            else:
                out.append(headers[piece])
        return b"".join(out)

    def _headers(self, recipient: Recipient, date: datetime) -> dict[str, bytes]:
        to = AddressHeader("To", recipient.name, recipient.email)
        url = check_header("List-Unsubscribe", recipient.list_unsubscribe_url or "")
        stamp = format_datetime(date)  # to the second: one Date line a second, not a message
        if self._dates[0] != stamp:
            self._dates = (stamp, self.policy.fold_binary("Date", stamp))
        return {
            "date": self._dates[1],
            "to": to.fold(policy=self.policy).encode("ascii"),
            "message-id": self._line(
                "Message-ID", check_header("Message-ID", recipient.message_id)
            ),
            "list-unsubscribe": self._line("List-Unsubscribe", f"<{url}>"),
        }

    def _line(self, name: str, value: str) -> bytes:
        if len(name) + 2 + len(value) <= _LINE_LIMIT and _PLAIN_VALUE.fullmatch(value):
            return f"{name}: {value}{self._nl}".encode("ascii")
        return self.policy.fold_binary(name, value)


def _normal_body(text: str, part: MIMEPart) -> bytes:
    """``text`` in the part's charset with LF line ends, as the ``email`` package encodes it."""
    charset = part.get_content_charset() or "utf-8"
    return b"\n".join(text.encode(charset).splitlines()) + b"\n"


_PLACEHOLDER_OF = {p.value.encode("ascii"): p for p in Placeholder}
_PLACEHOLDERS_BYTES = re.compile(b"(" + b"|".join(map(re.escape, _PLACEHOLDER_OF)) + b")")

MessageBytes = Callable[[Recipient], bytes]


class TemplateCache:
    """A ``MessageTemplate`` per message content (a run's variants), kept across batches."""

    MAX_MESSAGES = 32

    def __init__(self, *, linesep: str | None = None) -> None:
        self.linesep = linesep
        self._by_message: dict[tuple[object, ...], MessageTemplate] = {}

    def templates(self, message: OutgoingMessage, date: datetime) -> MessageTemplate:
        # The texts by identity: a run's batches of one variant share its rendered strings (the
        # template keeps them alive, so an id is never reused while it is a key).
        key = (
            id(message.text),
            id(message.html),
            message.subject,
            message.sender_name,
            message.sender_email,
            message.reply_to,
            message.issue_month,
            message.list_id,
            message.variant,
        )
        found = self._by_message.get(key)
        if found is None:
            if len(self._by_message) >= self.MAX_MESSAGES:
                self._by_message.clear()
            found = MessageTemplate(message, date=date, linesep=self.linesep)
            self._by_message[key] = found
        return found
