"""message tallies

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Campaign analytics at 1M messages without a pass over the campaign's rows (docs/architecture.md,
"Analytics at a million messages"):

- `message_tallies`: messages counted by what the reports group them by (campaign, status, sender, Twilio's
  SID or not, the minute of sent/delivered/failed, read, error code, the caps' and rate limit's marks),
  kept by triggers on `messages` in the writing transaction itself, so they are exactly the rows' counts.
  A write appends its deltas (-1 for the row as it was, +1 as it is): no row is updated, so concurrent
  sends never wait on one another; `fold_message_tallies` (the scheduler's tick) sums a campaign's deltas
  into one row per group.
- three partial indexes that answer exact percentiles and the first and last send by a short walk of an
  index instead of sorting the campaign's rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What one message counts as: the groups of message_tallies, computed from a messages row `m`.
DIMENSIONS = """
    m.campaign_id, m.status, m.sender, m.provider_sid IS NOT NULL,
    date_trunc('minute', m.sent_at, 'UTC'), date_trunc('minute', m.delivered_at, 'UTC'),
    date_trunc('minute', m.failed_at, 'UTC'),
    m.delivered_at IS NOT NULL AND m.sent_at IS NOT NULL, m.read_at IS NOT NULL AND m.sent_at IS NOT NULL,
    m.error_code, m.status = 'SKIPPED' AND m.status_reason IS NOT DISTINCT FROM 'frequency_cap',
    m.rate_limit_deferrals > 0, m.frequency_cap_deferrals > 0"""
COLUMNS = """
    campaign_id, status, sender, handed, sent_minute, delivered_minute, failed_minute, delivered, read,
    error_code, cap_skipped, rate_limited, cap_deferred"""
# Watched by the UPDATE trigger: a write that changes none of these cannot move a message between groups.
WATCHED = (
    "campaign_id",
    "status",
    "sender",
    "provider_sid",
    "sent_at",
    "delivered_at",
    "failed_at",
    "read_at",
    "error_code",
    "status_reason",
    "rate_limit_deferrals",
    "frequency_cap_deferrals",
)


def _row(record: str) -> str:
    """DIMENSIONS of the trigger's OLD or NEW row."""
    return DIMENSIONS.replace("m.", f"{record}.")


def _deltas(source: str, sign: str) -> str:
    return f"""
        INSERT INTO message_tallies ({COLUMNS}, messages, rate_limit_deferrals, cap_deferrals)
        SELECT {DIMENSIONS}, {sign} count(*), {sign} sum(m.rate_limit_deferrals),
               {sign} sum(m.frequency_cap_deferrals)
        FROM {source} m
        GROUP BY {", ".join(str(i) for i in range(1, 14))};"""


def upgrade() -> None:
    op.create_table(
        "message_tallies",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("handed", sa.Boolean(), nullable=False),
        sa.Column("sent_minute", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_minute", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_minute", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("cap_skipped", sa.Boolean(), nullable=False),
        sa.Column("rate_limited", sa.Boolean(), nullable=False),
        sa.Column("cap_deferred", sa.Boolean(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("rate_limit_deferrals", sa.BigInteger(), nullable=False),
        sa.Column("cap_deferrals", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index("ix_message_tallies_campaign_id", "message_tallies", ["campaign_id"])
    op.create_index(
        "ix_message_tallies_unfolded",
        "message_tallies",
        ["campaign_id"],
        postgresql_where=sa.text("NOT folded"),
    )
    # Nothing may write messages between the backfill and the triggers: both happen under this lock.
    op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"""
        CREATE FUNCTION message_tallies_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_deltas("new_rows", "")} RETURN NULL; END $$""")
    op.execute(f"""
        CREATE FUNCTION message_tallies_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_deltas("old_rows", "-")} RETURN NULL; END $$""")
    # Row by row, and only when a watched column changed: the send path's single-row writes that move a
    # message (claim, Twilio's answer, each callback) append two rows; the others (planning, slots) none.
    op.execute(f"""
        CREATE FUNCTION message_tallies_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO message_tallies ({COLUMNS}, messages, rate_limit_deferrals, cap_deferrals)
            VALUES ({_row("OLD")}, -1, -OLD.rate_limit_deferrals, -OLD.frequency_cap_deferrals),
                   ({_row("NEW")}, 1, NEW.rate_limit_deferrals, NEW.frequency_cap_deferrals);
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER message_tallies_insert AFTER INSERT ON messages
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_tallies_insert()""")
    op.execute("""
        CREATE TRIGGER message_tallies_delete AFTER DELETE ON messages
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_tallies_delete()""")
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in WATCHED)
    op.execute(f"""
        CREATE TRIGGER message_tallies_update AFTER UPDATE ON messages FOR EACH ROW
        WHEN ({changed}) EXECUTE FUNCTION message_tallies_update()""")
    op.execute(f"""
        INSERT INTO message_tallies ({COLUMNS}, messages, rate_limit_deferrals, cap_deferrals, folded)
        SELECT {DIMENSIONS}, count(*), sum(m.rate_limit_deferrals), sum(m.frequency_cap_deferrals), true
        FROM messages m
        GROUP BY {", ".join(str(i) for i in range(1, 14))}""")
    # Exact percentiles by position, and the first and last send, each a short walk of one index.
    op.create_index(
        "ix_messages_campaign_id_to_deliver",
        "messages",
        ["campaign_id", sa.text("(delivered_at - sent_at)")],
        postgresql_include=["delivered_at", "sent_at"],
        postgresql_where=sa.text("delivered_at IS NOT NULL AND sent_at IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_campaign_id_to_read",
        "messages",
        ["campaign_id", sa.text("(read_at - sent_at)")],
        postgresql_include=["read_at", "sent_at"],
        postgresql_where=sa.text("read_at IS NOT NULL AND sent_at IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_campaign_id_sent_at",
        "messages",
        ["campaign_id", "sent_at"],
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_campaign_id_rate_limit_wait",
        "messages",
        ["campaign_id", "rate_limit_wait_seconds"],
        postgresql_where=sa.text("rate_limit_deferrals > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_campaign_id_rate_limit_wait", table_name="messages")
    op.drop_index("ix_messages_campaign_id_sent_at", table_name="messages")
    op.drop_index("ix_messages_campaign_id_to_read", table_name="messages")
    op.drop_index("ix_messages_campaign_id_to_deliver", table_name="messages")
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER message_tallies_{event} ON messages")
        op.execute(f"DROP FUNCTION message_tallies_{event}()")
    op.drop_table("message_tallies")
