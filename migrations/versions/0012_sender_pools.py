"""sender pools and frequency caps

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Sends spread over pools of WhatsApp senders, and per-user frequency caps across campaigns
(docs/architecture.md, "Sender pools" and "Frequency caps"):

- `senders`: a pool's numbers (or Messaging Services) with their ceilings and state;
- `user_senders`: when a user last wrote to each sender (the 24-hour window is per sender and user);
- `frequency_caps`: at most N marketing messages per user per rolling window;
- campaigns: the pool, transactional (exempt from caps), the cap policy and an optional end time;
- messages: the chosen sender and the cap deferrals, and an index for a sender's recent sends.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "senders",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("rate_limit_per_second", sa.Integer(), server_default=sa.text("80"), nullable=False),
        sa.Column("state", sa.Text(), server_default="active", nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("paused_by", sa.Text(), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.Integer(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("state IN ('active', 'paused')", name=op.f("ck_senders_state")),
        sa.CheckConstraint("rate_limit_per_second BETWEEN 1 AND 500", name=op.f("ck_senders_rate_limit")),
        sa.CheckConstraint(
            "address ~ '^whatsapp:\\+[1-9][0-9]{6,14}$' OR address ~ '^MG[0-9a-f]{32}$'",
            name=op.f("ck_senders_address"),
        ),
        sa.CheckConstraint("length(pool) BETWEEN 1 AND 100", name=op.f("ck_senders_pool_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_senders")),
        sa.UniqueConstraint("address", name=op.f("uq_senders_address")),
    )
    op.create_index(op.f("ix_senders_pool_state"), "senders", ["pool", "state"])
    op.create_table(
        "user_senders",
        sa.Column("user_phone", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_phone"],
            ["users.phone_e164"],
            name=op.f("fk_user_senders_user_phone_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_phone", "sender", name=op.f("pk_user_senders")),
    )
    op.create_table(
        "frequency_caps",
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("max_messages", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("max_messages BETWEEN 1 AND 1000", name=op.f("ck_frequency_caps_max_messages")),
        sa.CheckConstraint(
            "window_seconds BETWEEN 3600 AND 31622400", name=op.f("ck_frequency_caps_window_seconds")
        ),
        sa.PrimaryKeyConstraint("window_seconds", name=op.f("pk_frequency_caps")),
    )
    op.add_column("campaigns", sa.Column("sender_pool", sa.Text(), nullable=True))
    op.add_column(
        "campaigns", sa.Column("transactional", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column(
        "campaigns", sa.Column("frequency_cap_policy", sa.Text(), server_default="defer", nullable=False)
    )
    op.add_column("campaigns", sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_campaigns_frequency_cap_policy"), "campaigns", "frequency_cap_policy IN ('defer', 'skip')"
    )
    op.add_column("messages", sa.Column("sender", sa.Text(), nullable=True))
    op.add_column(
        "messages",
        sa.Column("frequency_cap_deferrals", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    # Every existing message has sender NULL: the partial index starts empty, so no long build.
    op.create_index(
        "ix_messages_sender_claimed_at",
        "messages",
        ["sender", "claimed_at"],
        postgresql_where=sa.text("sender IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_sender_claimed_at", table_name="messages")
    op.drop_column("messages", "frequency_cap_deferrals")
    op.drop_column("messages", "sender")
    op.drop_constraint(op.f("ck_campaigns_frequency_cap_policy"), "campaigns", type_="check")
    op.drop_column("campaigns", "ends_at")
    op.drop_column("campaigns", "frequency_cap_policy")
    op.drop_column("campaigns", "transactional")
    op.drop_column("campaigns", "sender_pool")
    op.drop_table("frequency_caps")
    op.drop_table("user_senders")
    op.drop_index(op.f("ix_senders_pool_state"), table_name="senders")
    op.drop_table("senders")
