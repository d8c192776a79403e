"""repair indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

The sweeper's reads on every scheduler tick (shared.db.queries.repairs): claims left SENDING or AMBIGUOUS,
ACCEPTED/SENT messages nothing moved, QUEUED messages past their send time. Partial indexes on the few
rows in those states, so a tick costs the same at 1M messages as at 100 (a full scan of the ledger every
minute would not).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_messages_unsettled_claimed_at": (["status", "claimed_at"], "status IN ('SENDING', 'AMBIGUOUS')"),
    "ix_messages_in_flight_updated_at": (["status", "updated_at"], "status IN ('ACCEPTED', 'SENT')"),
    "ix_messages_queued_scheduled_at": (["scheduled_at"], "status = 'QUEUED'"),
}


# The health view's "repairs in the last hour" over the audit trail.
AUDIT_INDEX = "ix_audit_events_repairs_occurred_at"
AUDIT_WHERE = "kind LIKE 'repair.%' OR kind LIKE 'reconcile.%'"


def upgrade() -> None:
    for name, (columns, where) in INDEXES.items():
        op.create_index(name, "messages", columns, postgresql_where=sa.text(where))
    op.create_index(AUDIT_INDEX, "audit_events", ["occurred_at"], postgresql_where=sa.text(AUDIT_WHERE))


def downgrade() -> None:
    op.drop_index(AUDIT_INDEX, table_name="audit_events")
    for name in INDEXES:
        op.drop_index(name, table_name="messages")
