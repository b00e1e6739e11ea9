"""Every table of the project's database, as SQLAlchemy Core metadata (portable: SQLite, PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per person ever on the list. `email_key` is the case-folded address that makes the
# address unique; after --forget, email/name are erased and only `email_hash` (one-way) remains.
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("email_key", sa.String(320), nullable=True, unique=True),
    sa.Column("email_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("topics", sa.Text, nullable=False, server_default="[]"),  # JSON list of topic names
    # consent record (CASL): how, from where, when
    sa.Column("source", sa.String(20), nullable=False),  # cli | import | web
    sa.Column("source_detail", sa.String(500), nullable=True),  # e.g. the imported file's name
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.Column("subscribed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("confirmed_ip", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=True),
    # How the reader reads their topics: all (theirs first, marked) | only (just theirs).
    sa.Column("topic_mode", sa.String(10), nullable=False, server_default="all"),
)

# Every status change (and other notable change) with its reason: why a person is suppressed.
subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False, index=True
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "kind", sa.String(40), nullable=False
    ),  # subscribed, confirmed, unsubscribed, bounced …
    sa.Column("from_status", sa.String(20), nullable=True),
    sa.Column("to_status", sa.String(20), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column(
        "source", sa.String(40), nullable=False
    ),  # cli | import | web | webhook | sync | send
    sa.Column(
        "external_id", sa.String(200), nullable=True, unique=True
    ),  # webhook sg_event_id etc.
)

# One row per send run of an issue (the real send; --test-to copies are not recorded).
sends = sa.Table(
    "sends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue", sa.String(7), nullable=False, unique=True),  # "YYYY-MM"
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("transport", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | completed | interrupted
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column(
        "triggered_by", sa.String(40), nullable=False, server_default="cli"
    ),  # cli | scheduler
    # The lease: which run owns the send now (see store/lease.py). Empty when no run holds it.
    sa.Column("lease_run", sa.String(40), nullable=True),  # a random id per run
    sa.Column("lease_host", sa.String(200), nullable=True),
    sa.Column("lease_pid", sa.Integer, nullable=True),
    sa.Column("lease_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("lease_heartbeat", sa.DateTime(timezone=True), nullable=True),
)

# The send ledger: who got what. One row per (issue, subscriber); never two.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # LedgerStatus
    sa.Column("batch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(300), nullable=True),  # ours (Message-ID) or the provider's
    sa.Column("provider_message_id", sa.String(300), nullable=True),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),  # from webhooks
    # Times this row was sent again after being unconfirmed (--resend-unconfirmed): possible twins.
    sa.Column("resent", sa.Integer, nullable=False, server_default="0"),
    # Which variant of the issue the reader was sent (newsletter/variants.py), e.g. "2*,1".
    sa.Column("variant", sa.String(200), nullable=True),
    sa.UniqueConstraint("send_id", "subscriber_id", name="uq_deliveries_send_subscriber"),
    sa.Index("ix_deliveries_send_status", "send_id", "status"),
)

# The scheduler's claim on a month: the unique constraint makes two schedulers send once.
schedule_claims = sa.Table(
    "schedule_claims",
    metadata,
    sa.Column("issue", sa.String(7), primary_key=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),  # host:pid of the claiming process
    sa.Column("outcome", sa.String(40), nullable=True),  # sent | gave_up | failed
)

# Schema bookkeeping: which named migrations ran.
schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)
