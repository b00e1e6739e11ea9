"""Build the RFC 5322 message one recipient gets: multipart/alternative, text first, HTML second.

Used by ``newsletter build`` (email.eml), the SMTP and outbox transports. Header values are
checked for CR/LF so no content can inject a header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from newsletter.errors import PermanentDeliveryError
from newsletter.models import OutgoingMessage, Recipient, personalise

MESSAGE_ID_DOMAIN_DEFAULT = "newsletter.invalid"


def check_header(name: str, value: str) -> str:
    """Refuse a header value with a line break: it would let content add headers of its own."""
    if "\r" in value or "\n" in value:
        raise PermanentDeliveryError(f"the {name} header contains a line break: {value!r}")
    return value


def new_message_id(sender_email: str) -> str:
    """A fresh ``<…@domain>`` Message-ID in the sender's domain."""
    domain = sender_email.rpartition("@")[2] or MESSAGE_ID_DOMAIN_DEFAULT
    return make_msgid(domain=domain)


def _address(name: str | None, email: str) -> str:
    check_header("address", email)
    if name:
        check_header("name", name)
        try:
            return str(Address(display_name=name, addr_spec=email))
        except (ValueError, IndexError):
            return formataddr((name, email))
    return email


def build_message(
    message: OutgoingMessage, recipient: Recipient, *, date: datetime | None = None
) -> EmailMessage:
    """The complete message for ``recipient``, its placeholders filled."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = _address(message.sender_name, message.sender_email)
    mail["To"] = _address(recipient.name, recipient.email)
    mail["Subject"] = check_header("Subject", message.subject)
    mail["Date"] = format_datetime(date or datetime.now(UTC))
    mail["Message-ID"] = check_header("Message-ID", recipient.message_id)
    if message.reply_to:
        mail["Reply-To"] = _address(None, message.reply_to)
    if recipient.list_unsubscribe_url:
        url = check_header("List-Unsubscribe", recipient.list_unsubscribe_url)
        mail["List-Unsubscribe"] = f"<{url}>"
        # RFC 8058: the mail client may unsubscribe with one POST, no page visit.
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if message.issue_month:
        mail["X-Newsletter-Issue"] = check_header("X-Newsletter-Issue", message.issue_month)
    if recipient.subscriber_id is not None:
        mail["X-Newsletter-Subscriber"] = str(recipient.subscriber_id)
    mail.set_content(personalise(message.text, recipient.substitutions), charset="utf-8")
    if message.html is not None:
        mail.add_alternative(
            personalise(message.html, recipient.substitutions), subtype="html", charset="utf-8"
        )
    return mail
