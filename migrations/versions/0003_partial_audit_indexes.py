"""partial audit indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The audit trail's message and campaign indexes only serve lookups of one message or one campaign. Consent
changes carry neither (a 1M-row import writes ~1M of them), so those rows stay out of both indexes:
~1 s of PostgreSQL CPU per 1M imported users, and smaller indexes for the send path's lookups.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTIAL = (("message_id",), "message_id IS NOT NULL"), (("campaign_id", "kind"), "campaign_id IS NOT NULL")


def _name(columns: tuple[str, ...]) -> str:
    return op.f(f"ix_audit_events_{'_'.join(columns)}")


def upgrade() -> None:
    for columns, where in _PARTIAL:
        op.drop_index(_name(columns), table_name="audit_events")
        op.create_index(_name(columns), "audit_events", list(columns), postgresql_where=sa.text(where))


def downgrade() -> None:
    for columns, _ in _PARTIAL:
        op.drop_index(_name(columns), table_name="audit_events")
        op.create_index(_name(columns), "audit_events", list(columns))
