"""dashboard sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Server-side state for the dashboard's sign-in: sessions revoked at sign-out (the signed cookie alone
stays valid until it expires), and sign-in attempts per client (the throttle on guessing tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_signin_attempts",
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client", name=op.f("pk_dashboard_signin_attempts")),
    )
    op.create_index(
        op.f("ix_dashboard_signin_attempts_window_started_at"),
        "dashboard_signin_attempts",
        ["window_started_at"],
    )
    op.create_table(
        "dashboard_revoked_sessions",
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_dashboard_revoked_sessions")),
    )
    op.create_index(
        op.f("ix_dashboard_revoked_sessions_expires_at"), "dashboard_revoked_sessions", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("dashboard_revoked_sessions")
    op.drop_table("dashboard_signin_attempts")
