"""campaign quiet hours source

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Where a campaign's quiet hours came from: the request ("explicit", also when it turned them off with
null) or the DEFAULT_QUIET_HOURS setting ("default"), so the API and the dashboard can say which.
Campaigns created before this migration gave theirs (or none) explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column("quiet_hours_source", sa.Text(), server_default="explicit", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_campaigns_quiet_hours_source"),
        "campaigns",
        "quiet_hours_source IN ('explicit', 'default')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_campaigns_quiet_hours_source"), "campaigns", type_="check")
    op.drop_column("campaigns", "quiet_hours_source")
