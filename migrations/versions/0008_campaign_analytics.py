"""campaign analytics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

What a campaign's analytics need that was not recorded or not indexed (docs/architecture.md, "Campaign
analytics"):

- how often and how long a message waited for a rate slot beyond one send's wait: two counters on the
  message, bumped by the UPDATE that reschedules it (no statement of their own on the send path);
- replies attributed to a campaign by sender and time: an index on events_inbound (from_phone,
  received_at, id), so one recipient's inbound messages after a send are one index range (the export);
  the id makes it the keyset of a user's conversation as well (0009);
- opt-outs attributed to a campaign: users' own STOPs, a partial index on the few such rows of the
  audit trail;
- a campaign's error codes: a partial index on the messages that have one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INBOUND_INDEX = "ix_events_inbound_from_phone_received_at"
STOPS_INDEX = "ix_audit_events_user_stops"
ERRORS_INDEX = "ix_messages_campaign_id_error_code"
STOPS_WHERE = (
    "kind = 'consent.changed' AND (detail ->> 'to') = 'STOP' "
    "AND source IN ('inbound_keyword', 'twilio_opt_out_type')"
)


def upgrade() -> None:
    # NOT NULL with a constant default: a catalog change only (PostgreSQL 11+), no rewrite of the ledger.
    op.add_column(
        "messages",
        sa.Column("rate_limit_deferrals", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "messages",
        sa.Column("rate_limit_wait_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.create_index(INBOUND_INDEX, "events_inbound", ["from_phone", "received_at", "id"])
    op.create_index(
        STOPS_INDEX, "audit_events", ["user_phone", "occurred_at"], postgresql_where=sa.text(STOPS_WHERE)
    )
    op.create_index(
        ERRORS_INDEX,
        "messages",
        ["campaign_id", "error_code"],
        postgresql_where=sa.text("error_code IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(ERRORS_INDEX, table_name="messages")
    op.drop_index(STOPS_INDEX, table_name="audit_events")
    op.drop_index(INBOUND_INDEX, table_name="events_inbound")
    op.drop_column("messages", "rate_limit_wait_seconds")
    op.drop_column("messages", "rate_limit_deferrals")
