"""The send ledger: one ``sends`` row per issue, one ``deliveries`` row per (issue, subscriber).

One run at a time owns a send: it holds the send's lease (``store/lease.py``), and every write
of the run is fenced by it, so a second process, or a run that stalled and was taken over,
can never claim or record alongside the holder. A batch is claimed (its rows inserted as
``pending``) in one transaction *before* the transport is called, and its results recorded in
one transaction after. So a crash leaves exactly the
in-flight batch ``pending``; ``--resume`` turns those rows ``unconfirmed`` and never silently
resends them. The unique (send, subscriber) constraint makes a second copy impossible.
Claiming is one ``INSERT … SELECT`` per batch (the database picks the next active subscribers
with no row yet, by id), so nothing per subscriber crosses into Python but the batch itself.

``records`` holds the values (``SendRecord``, ``Candidate``, ``Outcome`` …), ``message_ids`` the
Message-IDs a claim writes, ``reads`` what needs no lease, ``claiming`` the batch's ``INSERT …
SELECT``, ``outcomes`` the recording of a transport's answer, ``run`` the ``Ledger`` that fences
every write with the lease. Everything is imported from here.
"""

from newsletter.store.ledger.claiming import claim_rows, mark_in_flight
from newsletter.store.ledger.message_ids import MessageIds
from newsletter.store.ledger.outcomes import ERROR_MAX
from newsletter.store.ledger.records import (
    Candidate,
    ClaimedRow,
    DeliveryResult,
    Outcome,
    SendRecord,
    SendStatus,
    refusal,
)
from newsletter.store.ledger.run import RESENDING, Ledger

__all__ = [
    "ERROR_MAX",
    "RESENDING",
    "Candidate",
    "ClaimedRow",
    "DeliveryResult",
    "Ledger",
    "MessageIds",
    "Outcome",
    "SendRecord",
    "SendStatus",
    "claim_rows",
    "mark_in_flight",
    "refusal",
]
