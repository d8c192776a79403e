"""campaign pipeline

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

What trigger -> fan-out -> send needs: the frozen audience and its pages, a planning cursor per campaign,
per-message generation / retry count / claim time / reserved slot, and the GCRA rate limiter state.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "phone", name=op.f("pk_campaign_recipients")),
    )
    op.create_table(
        "rate_limiters",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limiters")),
    )
    op.create_table(
        "campaign_pages",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("page_no", sa.Integer(), nullable=False),
        sa.Column("first_phone", sa.Text(), nullable=False),
        sa.Column("last_phone", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_pages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "page_no", name=op.f("pk_campaign_pages")),
    )
    op.add_column("campaigns", sa.Column("plan_cursor", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "messages", sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column(
        "messages", sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("messages", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("messages", sa.Column("slot_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "slot_at")
    op.drop_column("messages", "claimed_at")
    op.drop_column("messages", "retry_count")
    op.drop_column("messages", "generation")
    op.drop_column("campaigns", "plan_cursor")
    op.drop_table("campaign_pages")
    op.drop_table("rate_limiters")
    op.drop_table("campaign_recipients")
