"""One open database and the stores over it: opened once per process, closed when it ends.

The CLI opens it in its context and closes it with ``ctx.call_on_close`` (as sqlite-utils does);
the web app opens it at start-up; library entry points receive it instead of a URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

import sqlalchemy as sa

from newsletter.store.claims import ScheduleClaims
from newsletter.store.delivery_events import DeliveryEvent, apply_delivery_events
from newsletter.store.engine import open_database
from newsletter.store.lease import Owner
from newsletter.store.ledger import Ledger
from newsletter.store.subscribers import SubscriberStore


class Database:
    """The project's database: subscribers, the send ledger, the scheduler's claims."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.subscribers = SubscriberStore(engine)
        self.claims = ScheduleClaims(engine)

    @classmethod
    def open(cls, url: str) -> Database:
        """Open (and migrate) the database at ``url``."""
        return cls(open_database(url))

    def ledger(self, owner: Owner | None = None) -> Ledger:
        """The send ledger as seen by one run (``owner``: this process by default)."""
        return Ledger(self.engine, owner)

    def apply_delivery_events(self, events: Sequence[DeliveryEvent], now: datetime) -> list[bool]:
        """Apply what a provider reported about sent copies (see ``store.delivery_events``)."""
        return apply_delivery_events(self.engine, events, now)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
