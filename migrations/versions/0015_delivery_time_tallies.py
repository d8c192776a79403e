"""delivery time tallies

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

The campaign's delivery time percentiles without walking an index (docs/architecture.md, "Analytics at a
million messages"): `delivery_time_tallies` counts a campaign's delivered messages by their delivery time
(`delivered_at - sent_at`) in whole milliseconds, kept by triggers on `messages` in the writing transaction
the way `message_tallies` is (a write appends -1 for the row as it was and +1 as it is; the scheduler's tick
folds them). A percentile is then a running sum over a few hundred distinct milliseconds, not a walk to
position p x n of `ix_messages_campaign_id_to_deliver`, which this drops: at 1M messages the walk to the
median read half a million index entries, and a heap page for every entry of a message written since the
last VACUUM that set the page all-visible (the last sends of a campaign, all of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ms(record: str) -> str:
    """A row's delivery time in whole milliseconds (NULL unless both timestamps are set); rounded half away
    from zero on the exact numeric epoch, so a recount in SQL gets the same integer."""
    return (
        f"CASE WHEN {record}.delivered_at IS NOT NULL AND {record}.sent_at IS NOT NULL THEN "
        f"CAST(round(extract(epoch FROM {record}.delivered_at - {record}.sent_at) * 1000) AS bigint) END"
    )


def _deltas(source: str, sign: str) -> str:
    return f"""
        INSERT INTO delivery_time_tallies (campaign_id, ms, messages)
        SELECT m.campaign_id, {_ms("m")}, {sign} count(*)
        FROM {source} m
        WHERE m.delivered_at IS NOT NULL AND m.sent_at IS NOT NULL
        GROUP BY 1, 2;"""


def upgrade() -> None:
    op.create_table(
        "delivery_time_tallies",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index("ix_delivery_time_tallies_campaign_id", "delivery_time_tallies", ["campaign_id"])
    op.create_index(
        "ix_delivery_time_tallies_unfolded",
        "delivery_time_tallies",
        ["campaign_id"],
        postgresql_where=sa.text("NOT folded"),
    )
    # Nothing may write messages between the backfill and the triggers: both happen under this lock.
    op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"""
        CREATE FUNCTION delivery_time_tallies_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_deltas("new_rows", "")} RETURN NULL; END $$""")
    op.execute(f"""
        CREATE FUNCTION delivery_time_tallies_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_deltas("old_rows", "-")} RETURN NULL; END $$""")
    op.execute(f"""
        CREATE FUNCTION delivery_time_tallies_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO delivery_time_tallies (campaign_id, ms, messages)
            SELECT campaign_id, ms, messages
            FROM (VALUES (OLD.campaign_id, {_ms("OLD")}, -1), (NEW.campaign_id, {_ms("NEW")}, 1))
                AS d(campaign_id, ms, messages)
            WHERE ms IS NOT NULL;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER delivery_time_tallies_insert AFTER INSERT ON messages
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_time_tallies_insert()""")
    op.execute("""
        CREATE TRIGGER delivery_time_tallies_delete AFTER DELETE ON messages
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_time_tallies_delete()""")
    # Only the writes that set or change a delivery time (in practice the delivered callback) run it.
    op.execute("""
        CREATE TRIGGER delivery_time_tallies_update AFTER UPDATE ON messages FOR EACH ROW
        WHEN (OLD.campaign_id IS DISTINCT FROM NEW.campaign_id OR OLD.sent_at IS DISTINCT FROM NEW.sent_at
              OR OLD.delivered_at IS DISTINCT FROM NEW.delivered_at)
        EXECUTE FUNCTION delivery_time_tallies_update()""")
    op.execute(f"""
        INSERT INTO delivery_time_tallies (campaign_id, ms, messages, folded)
        SELECT m.campaign_id, {_ms("m")}, count(*), true
        FROM messages m
        WHERE m.delivered_at IS NOT NULL AND m.sent_at IS NOT NULL
        GROUP BY 1, 2""")
    op.drop_index("ix_messages_campaign_id_to_deliver", table_name="messages")


def downgrade() -> None:
    op.create_index(
        "ix_messages_campaign_id_to_deliver",
        "messages",
        ["campaign_id", sa.text("(delivered_at - sent_at)")],
        postgresql_include=["delivered_at", "sent_at"],
        postgresql_where=sa.text("delivered_at IS NOT NULL AND sent_at IS NOT NULL"),
    )
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER delivery_time_tallies_{event} ON messages")
        op.execute(f"DROP FUNCTION delivery_time_tallies_{event}()")
    op.drop_table("delivery_time_tallies")
