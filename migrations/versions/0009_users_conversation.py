"""users conversation

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

What an inbound message says beyond its text, and what links it to the conversation
(docs/architecture.md, "Conversations"): Twilio's WhatsApp fields WaId and ProfileName, the body
normalised for matching, the channel it came on, and the campaign message it answers. The user's timeline
(newest first, keyset) reads inbound by 0008's (from_phone, received_at, id); this adds messages by
(recipient_phone, coalesce(sent_at, created_at), id), whose expression is the timeline's order and, for a
sent message, its sent_at: it also serves the webhook's one lookup of the message being answered.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INBOUND_COLUMNS = ("wa_id", "profile_name", "body_normalized", "channel")
CHANNEL_CHECK = "channel"  # named ck_events_inbound_channel by the naming convention
MESSAGES_INDEX = "ix_messages_recipient_phone_at"


def upgrade() -> None:
    for column in INBOUND_COLUMNS:
        op.add_column("events_inbound", sa.Column(column, sa.Text(), nullable=True))
    op.add_column("events_inbound", sa.Column("in_reply_to_message_id", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        CHANNEL_CHECK, "events_inbound", "channel IS NULL OR channel IN ('whatsapp', 'sms')"
    )
    op.create_index(
        MESSAGES_INDEX,
        "messages",
        ["recipient_phone", sa.text("coalesce(sent_at, created_at)"), "id"],
    )


def downgrade() -> None:
    op.drop_index(MESSAGES_INDEX, table_name="messages")
    op.drop_constraint(CHANNEL_CHECK, "events_inbound", type_="check")
    op.drop_column("events_inbound", "in_reply_to_message_id")
    for column in reversed(INBOUND_COLUMNS):
        op.drop_column("events_inbound", column)
