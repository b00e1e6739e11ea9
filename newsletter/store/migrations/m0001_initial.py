"""0001: the schema as version 0.1.0 shipped it, frozen.

Written out here, never derived from ``store/schema.py``: a column added there later comes with
its own migration, and building the first tables from the live schema would add it twice.
"""

from __future__ import annotations

import sqlalchemy as sa

_frozen = sa.MetaData()

_subscribers = sa.Table(
    "subscribers",
    _frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("email_key", sa.String(320), nullable=True, unique=True),
    sa.Column("email_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("topics", sa.Text, nullable=False, server_default="[]"),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("source_detail", sa.String(500), nullable=True),
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.Column("subscribed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("confirmed_ip", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=True),
)

_subscriber_events = sa.Table(
    "subscriber_events",
    _frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False, index=True
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("from_status", sa.String(20), nullable=True),
    sa.Column("to_status", sa.String(20), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=True, unique=True),
)

_sends = sa.Table(
    "sends",
    _frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue", sa.String(7), nullable=False, unique=True),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("transport", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("triggered_by", sa.String(40), nullable=False, server_default="cli"),
)

_deliveries = sa.Table(
    "deliveries",
    _frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("batch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("provider_message_id", sa.String(300), nullable=True),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("send_id", "subscriber_id", name="uq_deliveries_send_subscriber"),
    sa.Index("ix_deliveries_send_status", "send_id", "status"),
)

_schedule_claims = sa.Table(
    "schedule_claims",
    _frozen,
    sa.Column("issue", sa.String(7), primary_key=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(40), nullable=True),
)

# The bookkeeping table: created before any migration runs, so it is frozen here too.
schema_migrations = sa.Table(
    "schema_migrations",
    _frozen,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def apply(conn: sa.Connection) -> None:
    """Create the five tables of version 0.1.0."""
    tables = [_subscribers, _subscriber_events, _sends, _deliveries, _schedule_claims]
    _frozen.create_all(conn, tables=tables)
