"""planning cursors per (campaign, pool sender)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

A pool campaign whose rate is at least its senders' summed ceilings plans each sender's messages at that
sender's own ceiling, on a cursor of its own (docs/architecture.md, "Sender pools"); a campaign without a
pool keeps using `campaigns.plan_cursor`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_plan_cursors",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_sender_plan_cursors_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "sender", name=op.f("pk_sender_plan_cursors")),
    )


def downgrade() -> None:
    op.drop_table("sender_plan_cursors")
