"""The Message-IDs a send's claims write into the ledger, the same in SQL and in Python."""

from __future__ import annotations

import secrets


class MessageIds:
    """Message-IDs made by the database while claiming: ``<ISSUE.TOKEN.NONCE@DOMAIN>``.

    TOKEN is the subscriber's id through a secret affine map of this run, ``(id * a + b) mod p``
    with ``p`` the prime 2**61 - 1: one per reader (a bijection), computable in SQL and here
    alike, and saying nothing of the id to whoever reads the header (``b`` is uniform). Unique
    (a fresh nonce per run), stored on the row, and reused when an unconfirmed recipient is sent
    again, so a receiving server can recognise the copy as the same message.
    """

    MODULUS = 2**61 - 1
    # ids below 2**32 times a multiplier below 2**31, plus b: no 64-bit SQL integer overflows.
    MULTIPLIER_BELOW = 2**31

    def __init__(self, issue: str, sender_email: str) -> None:
        domain = sender_email.rpartition("@")[2] or "newsletter.invalid"
        self.prefix = f"<{issue}."
        self.suffix = f".{secrets.token_hex(6)}@{domain}>"
        self.multiplier = 1 + secrets.randbelow(self.MULTIPLIER_BELOW - 1)
        self.offset = secrets.randbelow(self.MODULUS)

    def token(self, subscriber_id: int) -> int:
        return (subscriber_id * self.multiplier + self.offset) % self.MODULUS

    def for_id(self, subscriber_id: int) -> str:
        return f"{self.prefix}{self.token(subscriber_id)}{self.suffix}"
