"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22

The seed tables (same names) plus what the guarantees need: consent timestamps, the 24-hour window,
campaign states and timezone, one message per (campaign, recipient), unique provider SIDs, receipts
deduplicated on (message_sid, status), unique inbound MessageSid, and an append-only audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("user_phone", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint("length(kind) BETWEEN 1 AND 100", name=op.f("ck_audit_events_kind_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        op.f("ix_audit_events_campaign_id_kind"), "audit_events", ["campaign_id", "kind"], unique=False
    )
    op.create_index(op.f("ix_audit_events_message_id"), "audit_events", ["message_id"], unique=False)
    op.create_index(
        op.f("ix_audit_events_user_phone_occurred_at"),
        "audit_events",
        ["user_phone", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "events_inbound",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_sid", sa.Text(), nullable=True),
        sa.Column("from_phone", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("raw_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("idempotency_token", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "from_phone IS NULL OR from_phone ~ '^\\+[1-9][0-9]{6,14}$'",
            name=op.f("ck_events_inbound_from_phone"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events_inbound")),
        sa.UniqueConstraint("message_sid", name=op.f("uq_events_inbound_message_sid")),
    )
    op.create_index(op.f("ix_events_inbound_received_at"), "events_inbound", ["received_at"], unique=False)
    op.create_table(
        "segments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name=op.f("ck_segments_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sid", sa.Text(), nullable=True),
        sa.Column(
            "content_variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "content_sid IS NULL OR content_sid ~ '^HX[0-9a-fA-F]{32}$'",
            name=op.f("ck_templates_content_sid"),
        ),
        sa.CheckConstraint("length(content) BETWEEN 1 AND 4096", name=op.f("ck_templates_content_length")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name=op.f("ck_templates_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_templates_name")),
    )
    op.create_table(
        "users",
        sa.Column("phone_e164", sa.Text(), nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("consent_state", sa.Text(), server_default="OPT_OUT", nullable=False),
        sa.Column("consent_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "consent_state IN ('OPT_IN', 'OPT_OUT', 'STOP')", name=op.f("ck_users_consent_state")
        ),
        sa.CheckConstraint("phone_e164 ~ '^\\+[1-9][0-9]{6,14}$'", name=op.f("ck_users_phone_e164")),
        sa.PrimaryKeyConstraint("phone_e164", name=op.f("pk_users")),
    )
    op.create_index(
        op.f("ix_users_attributes"), "users", ["attributes"], unique=False, postgresql_using="gin"
    )
    op.create_index(op.f("ix_users_consent_state"), "users", ["consent_state"], unique=False)
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="DRAFT", nullable=False),
        sa.Column("paused_from", sa.Text(), nullable=True),
        sa.Column("schedule_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_limit_per_second", sa.Integer(), server_default=sa.text("80"), nullable=False),
        sa.Column("quiet_hours_start", sa.Time(), nullable=True),
        sa.Column("quiet_hours_end", sa.Time(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'READY', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED')",
            name=op.f("ck_campaigns_status"),
        ),
        sa.CheckConstraint(
            "(quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)",
            name=op.f("ck_campaigns_quiet_hours_both_or_neither"),
        ),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name=op.f("ck_campaigns_name_length")),
        sa.CheckConstraint("rate_limit_per_second BETWEEN 1 AND 500", name=op.f("ck_campaigns_rate_limit")),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_campaigns_segment_id_segments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_campaigns_template_id_templates"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(
        op.f("ix_campaigns_status_schedule_time"), "campaigns", ["status", "schedule_time"], unique=False
    )
    op.create_table(
        "subscriptions",
        sa.Column("user_phone", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("length(topic) BETWEEN 1 AND 100", name=op.f("ck_subscriptions_topic_length")),
        sa.ForeignKeyConstraint(
            ["user_phone"],
            ["users.phone_e164"],
            name=op.f("fk_subscriptions_user_phone_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_phone", "topic", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        op.f("ix_subscriptions_topic_user_phone"), "subscriptions", ["topic", "user_phone"], unique=False
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_phone", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("content_variables", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.Text(), server_default="QUEUED", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("provider_sid", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "recipient_phone ~ '^\\+[1-9][0-9]{6,14}$'", name=op.f("ck_messages_recipient_phone")
        ),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'SENDING', 'AMBIGUOUS', 'ACCEPTED', 'SENT', 'DELIVERED', 'READ', 'FAILED', 'UNDELIVERED', 'SKIPPED', 'WITHHELD')",
            name=op.f("ck_messages_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_messages_attempts")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_messages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_phone"],
            ["users.phone_e164"],
            name=op.f("fk_messages_recipient_phone_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "campaign_id", "recipient_phone", name=op.f("uq_messages_campaign_id_recipient_phone")
        ),
        sa.UniqueConstraint("provider_sid", name=op.f("uq_messages_provider_sid")),
    )
    op.create_index(
        op.f("ix_messages_campaign_id_status"), "messages", ["campaign_id", "status"], unique=False
    )
    op.create_table(
        "delivery_receipts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_sid", sa.Text(), nullable=True),
        sa.Column("message_status", sa.Text(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("raw_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("idempotency_token", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_delivery_receipts_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_receipts")),
        sa.UniqueConstraint(
            "message_sid", "message_status", name=op.f("uq_delivery_receipts_message_sid_message_status")
        ),
    )
    op.create_index(
        op.f("ix_delivery_receipts_message_id"), "delivery_receipts", ["message_id"], unique=False
    )

    # The audit trail is evidence: refuse UPDATE and DELETE in the database, not just in the code.
    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
        END $$;
        CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_index(op.f("ix_delivery_receipts_message_id"), table_name="delivery_receipts")
    op.drop_table("delivery_receipts")
    op.drop_index(op.f("ix_messages_campaign_id_status"), table_name="messages")
    op.drop_table("messages")
    op.drop_index(op.f("ix_subscriptions_topic_user_phone"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_campaigns_status_schedule_time"), table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index(op.f("ix_users_consent_state"), table_name="users")
    op.drop_index(op.f("ix_users_attributes"), table_name="users", postgresql_using="gin")
    op.drop_table("users")
    op.drop_table("templates")
    op.drop_table("segments")
    op.drop_index(op.f("ix_events_inbound_received_at"), table_name="events_inbound")
    op.drop_table("events_inbound")
    op.drop_index(op.f("ix_audit_events_user_phone_occurred_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_message_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_campaign_id_kind"), table_name="audit_events")
    op.drop_table("audit_events")
