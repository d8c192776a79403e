"""operator health

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

What the health report needs beyond the ledger (docs/architecture.md, "Health checks"):

- `webhook_errors`: the Twilio webhooks' refusals (4xx, and 503 when the write itself succeeds) counted
  per minute, webhook and status. Only refusals write here, so a webhook's success path gains no write.
- `dead_letters`: the pages Pub/Sub dead-lettered, drained from the hold subscription by the scheduler
  tick, one row per Pub/Sub message (its id unique, so a redelivered one is stored once).
- an index on delivery_receipts (received_at): the status webhook's successes of the last hour (the
  denominator of its error rate) are counted from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_errors",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("webhook", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "webhook", "status", name=op.f("pk_webhook_errors")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("pubsub_message_id", sa.Text(), nullable=False),
        sa.Column("subscription", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_attempt", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("pubsub_message_id", name=op.f("uq_dead_letters_pubsub_message_id")),
    )
    op.create_index(op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"])
    op.create_index(op.f("ix_delivery_receipts_received_at"), "delivery_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_receipts_received_at"), table_name="delivery_receipts")
    op.drop_table("dead_letters")
    op.drop_table("webhook_errors")
