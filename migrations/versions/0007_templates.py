"""templates: locale, channel, test sends

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A template's locale (a language tag, optional) and channel (only whatsapp: the send path can send
nothing else), and the record of each test send of a template to one opted-in person.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As shared.domain.templates.LOCALE_SQL_PATTERN when this was written (a migration never imports the app).
_LOCALE = "^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"


def upgrade() -> None:
    op.add_column("templates", sa.Column("locale", sa.Text(), nullable=True))
    op.add_column("templates", sa.Column("channel", sa.Text(), server_default="whatsapp", nullable=False))
    op.create_check_constraint(
        op.f("ck_templates_locale"), "templates", f"locale IS NULL OR locale ~ '{_LOCALE}'"
    )
    op.create_check_constraint(op.f("ck_templates_channel"), "templates", "channel IN ('whatsapp')")
    op.create_table(
        "template_test_sends",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_phone", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("content_sid", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("provider_sid", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "recipient_phone ~ '^\\+[1-9][0-9]{6,14}$'", name=op.f("ck_template_test_sends_recipient_phone")
        ),
        sa.CheckConstraint(
            "outcome IN ('ACCEPTED', 'FAILED', 'AMBIGUOUS')", name=op.f("ck_template_test_sends_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_test_sends_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_test_sends")),
    )
    op.create_index(
        op.f("ix_template_test_sends_template_id_created_at"),
        "template_test_sends",
        ["template_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("template_test_sends")
    op.drop_constraint(op.f("ck_templates_channel"), "templates", type_="check")
    op.drop_constraint(op.f("ck_templates_locale"), "templates", type_="check")
    op.drop_column("templates", "channel")
    op.drop_column("templates", "locale")
