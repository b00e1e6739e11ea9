"""Build the RFC 5322 message one recipient gets: multipart/alternative, text first, HTML second.

Used by ``newsletter build`` (email.eml), the SMTP and outbox transports; ``list_headers`` also
gives the SendGrid request its List-Id, Precedence and Feedback-ID. Header values are
checked for CR/LF so no content can inject a header; address headers are written from their
literal parts (``AddressHeader``), so a reader's name is only ever text, never header syntax.
Both parts are quoted-printable whatever their line lengths: 7-bit clean and the same encoding
every month, so a DKIM signature survives relays that would re-encode 8bit.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, make_msgid

from newsletter.errors import PermanentDeliveryError
from newsletter.models import OutgoingMessage, Recipient, personalise
from newsletter.names import (
    MAX_NAME_BYTES,
    has_refused_character,
    name_problem,
    refused_character,
)
from newsletter.values.clock import now_utc

MESSAGE_ID_DOMAIN_DEFAULT = "newsletter.invalid"
BODY_ENCODING = "quoted-printable"  # both parts, always (see the module docstring)
# Lines of 76 characters at most: the ``email`` package encodes quoted-printable to the policy's
# max_line_length, and RFC 2045 allows no longer encoded line (SMTP's 78 would break it).
MAIL_POLICY = SMTP.clone(max_line_length=76)
# A non-ASCII address needs SMTPUTF8 (RFC 6531): its message has raw UTF-8 headers.
SMTP_UTF8 = MAIL_POLICY.clone(utf8=True)

_ATOM = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"  # RFC 5322 atext without "=" and "?"
_PLAIN_PHRASE = re.compile(rf"{_ATOM}(?: {_ATOM})*")
_NOT_IN_ADDRESS = re.compile(r'[\s<>()\[\],;:\\"]')
# The everyday address (RFC 5322 dot-atoms, an ASCII domain): safe in a header as it stands, so
# it skips the header parser, which costs tens of µs per recipient on every send.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


class MessageBuildError(PermanentDeliveryError):
    """One recipient's message cannot be built; the message says why without their address."""


def check_header(name: str, value: str) -> str:
    """Refuse a header value with a line break: it would let content add headers of its own."""
    if "\r" in value or "\n" in value:
        raise PermanentDeliveryError(f"the {name} header contains a line break: {value!r}")
    return value


def list_headers(message: OutgoingMessage) -> dict[str, str]:
    """The headers of a list message, the same for each of its readers (none for one-off mail).

    ``List-Id`` (RFC 2919) lets mail clients and filters group the list; ``Precedence: bulk``
    keeps auto-replies away; ``Feedback-ID`` is Gmail's ``CampaignID:CustomerID:MailType:SenderId``
    (issue, variant, "newsletter", list id): no reader's number in any of them.
    """
    if message.list_id is None:
        return {}
    list_id = check_header("List-Id", message.list_id)
    label = message.sender_name if _PLAIN_PHRASE.fullmatch(message.sender_name) else ""
    headers = {
        "List-Id": f"{label} <{list_id}>" if label else f"<{list_id}>",
        "Precedence": "bulk",
    }
    if message.issue_month:
        campaign = check_header("Feedback-ID", message.issue_month).replace(":", "-")
        headers["Feedback-ID"] = f"{campaign}:{variant_tag(message.variant)}:newsletter:{list_id}"
    return headers


def variant_tag(key: str | None) -> str:
    """A short stable name for a variant: ``default``, else a hash of its key (``v`` + 8 hex)."""
    if key is None:
        return "default"
    return "v" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def new_message_id(sender_email: str) -> str:
    """A fresh ``<…@domain>`` Message-ID in the sender's domain."""
    domain = sender_email.rpartition("@")[2] or MESSAGE_ID_DOMAIN_DEFAULT
    return make_msgid(domain=domain)


class AddressHeader(str):
    """A From/To/Reply-To header made here from literal parts, never parsed from text.

    ``email.policy`` stores a value with a matching ``name`` as it is and calls its ``fold`` to
    write it. The header registry would parse ``"name <address>"`` again instead, and decode a
    name like ``=?utf-8?b?DQo=?=`` into a line break: a display name here is always literal text.
    """

    name: str
    display_name: str
    addr_spec: str
    _wire: str

    def __new__(cls, header: str, display_name: str | None, addr_spec: str) -> AddressHeader:
        name, address = check_address(header, display_name, addr_spec)
        username, _, domain = address.rpartition("@")
        self = super().__new__(cls, str(Address(name, username, domain)))
        self.name, self.display_name, self.addr_spec = header, name, address
        self._wire = f"{display_name_wire(name)} <{address}>" if name else address
        return self

    def __getnewargs__(self) -> tuple[str, str, str]:  # type: ignore[override]
        """What copy and pickle pass to ``__new__`` (a str's own arguments would not do)."""
        return (self.name, self.display_name, self.addr_spec)

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The one address, as ``email.headerregistry`` headers offer it."""
        username, _, domain = self.addr_spec.rpartition("@")
        return (Address(self.display_name, username, domain),)

    @property
    def needs_utf8(self) -> bool:
        """True when the address is not ASCII: only an SMTPUTF8 message can carry it."""
        return not self.addr_spec.isascii()

    def fold(self, *, policy: Policy) -> str:
        """The header as written, folded at spaces to the policy's line length."""
        return fold_header(self.name, self._wire, policy)


def display_name_wire(name: str) -> str:
    """``name`` as header text that any reader decodes back to exactly ``name``.

    Atoms without "=" and "?" go as they are (nothing in them looks like an encoded word), other
    printable ASCII without "=?" as a quoted string, anything else as ONE RFC 2047 encoded word,
    even past the RFC's 75 characters (decoders take it): CPython's parser, until its fix for
    gh-128110, joins adjacent encoded words with a space, which would change the name.
    ``name_problem`` keeps every name short enough for that word to fit one 998-character line.
    """
    if _PLAIN_PHRASE.fullmatch(name):
        return name
    if name.isascii() and name.isprintable() and "=?" not in name:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "=?utf-8?b?" + base64.b64encode(name.encode("utf-8")).decode("ascii") + "?="


def fold_header(label: str, value: str, policy: Policy) -> str:
    """``label: value`` with a line break before a space wherever a line would get too long.

    Unfolding removes only the line breaks, so every space and character comes back as it was.
    """
    limit = policy.max_line_length or 0
    lines, line = [], f"{label}:"
    for word in value.split(" "):
        if limit and word and len(line) + 1 + len(word) > limit and line != f"{label}:":
            lines.append(line)
            line = ""
        line += " " + word
    return policy.linesep.join([*lines, line]) + policy.linesep


def check_address(header: str, display_name: str | None, addr_spec: str) -> tuple[str, str]:
    """``(display name, address)`` fit for ``header``, else ``MessageBuildError`` (no address in it)."""
    return _display_name(header, display_name), _addr_spec(header, addr_spec)


def all_plain(names: Sequence[str | None], addresses: Sequence[str]) -> bool:
    """True when ``check_address`` would pass every one of these names and addresses unchanged.

    One check for a whole batch (a few C-level passes instead of two calls per recipient): every
    address is an everyday one (``_PLAIN_ADDRESS``) and no name has a refused character, is too
    long or too many bytes. False says only that some recipient needs the one-by-one check.
    """
    if not all(map(_PLAIN_ADDRESS.fullmatch, addresses)):
        return False
    given = [name for name in names if name]
    if not given:
        return True
    # At most 4 bytes of UTF-8 a character: names this short are never over MAX_NAME_BYTES.
    if max(map(len, given)) * 4 > MAX_NAME_BYTES:
        return False
    return not has_refused_character("".join(given))  # joined: no refused character made


def _display_name(header: str, name: str | None) -> str:
    problem = name_problem(name) if name else None
    if problem is not None:
        raise MessageBuildError(f"the {header} header: the name {problem}")
    return name or ""


def _addr_spec(header: str, email: str) -> str:
    """The address checked for header use: one addr-spec, nothing that could start another."""
    if _PLAIN_ADDRESS.fullmatch(email):
        return email
    invalid = MessageBuildError(f"the {header} header: the address is not a valid email address")
    if any(refused_character(char) for char in email):
        raise invalid
    if email.isascii():
        try:
            address = Address(addr_spec=email)
        except (ValueError, IndexError, MessageError) as err:  # defects, HeaderParseError …
            raise invalid from err
        if address.addr_spec != email or not address.domain:
            raise invalid
        return email
    local, at, domain = email.rpartition("@")
    if not (local and at and domain) or "@" in local or _NOT_IN_ADDRESS.search(email):
        raise invalid
    return email


def needs_smtputf8(mail: EmailMessage) -> bool:
    """True for a message with raw UTF-8 headers (a non-ASCII address): only SMTPUTF8 carries it."""
    return bool(getattr(mail.policy, "utf8", False))


def check_message(message: OutgoingMessage) -> None:
    """Refuse a message whose shared headers are bad (``PermanentDeliveryError``): no one could get it."""
    AddressHeader("From", message.sender_name, message.sender_email)
    if message.reply_to:
        AddressHeader("Reply-To", None, message.reply_to)
    check_header("Subject", message.subject)
    if message.issue_month:
        check_header("X-Newsletter-Issue", message.issue_month)
    list_headers(message)


def build_message(
    message: OutgoingMessage, recipient: Recipient, *, date: datetime | None = None
) -> EmailMessage:
    """The complete message for ``recipient``, its placeholders filled."""
    sender = AddressHeader("From", message.sender_name, message.sender_email)
    to = AddressHeader("To", recipient.name, recipient.email)
    reply_to = AddressHeader("Reply-To", None, message.reply_to) if message.reply_to else None
    utf8 = sender.needs_utf8 or to.needs_utf8 or (reply_to is not None and reply_to.needs_utf8)
    mail = EmailMessage(policy=SMTP_UTF8 if utf8 else MAIL_POLICY)
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = check_header("Subject", message.subject)
    mail["Date"] = format_datetime(date or now_utc())
    mail["Message-ID"] = check_header("Message-ID", recipient.message_id)
    if reply_to is not None:
        mail["Reply-To"] = reply_to
    if recipient.list_unsubscribe_url:
        url = check_header("List-Unsubscribe", recipient.list_unsubscribe_url)
        mail["List-Unsubscribe"] = f"<{url}>"
        # RFC 8058: the mail client may unsubscribe with one POST, no page visit.
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in list_headers(message).items():
        mail[name] = value
    if message.issue_month:
        mail["X-Newsletter-Issue"] = check_header("X-Newsletter-Issue", message.issue_month)
    text = personalise(message.text, recipient.substitutions)
    mail.set_content(text, charset="utf-8", cte=BODY_ENCODING)
    if message.html is not None:
        html = personalise(message.html, recipient.substitutions)
        mail.add_alternative(html, subtype="html", charset="utf-8", cte=BODY_ENCODING)
    return mail
