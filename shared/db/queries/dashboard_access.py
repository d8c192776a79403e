"""SQL for the dashboard's sign-in: the attempt throttle per client and the sessions signed out early."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.unit_of_work import UnitOfWork

# One statement per attempt, so concurrent attempts from one client are each counted (an increment, not
# a read and a write). A window that is over starts again at this attempt. Rows of other clients' windows
# that are over go at the same time, through the window_started_at index: the table holds live windows only.
_COUNT_ATTEMPT = text(
    """
WITH over AS (
    DELETE FROM dashboard_signin_attempts
    WHERE window_started_at <= :window_start AND client <> :client
)
INSERT INTO dashboard_signin_attempts AS a (client, window_started_at, attempts)
VALUES (:client, :now, 1)
ON CONFLICT (client) DO UPDATE SET
    window_started_at = CASE WHEN a.window_started_at <= :window_start THEN :now ELSE a.window_started_at END,
    attempts = CASE WHEN a.window_started_at <= :window_start THEN 1 ELSE a.attempts + 1 END
RETURNING attempts, window_started_at
"""
)
_CLEAR_ATTEMPTS = text("DELETE FROM dashboard_signin_attempts WHERE client = :client")
# Sessions whose cookie has expired on its own need no row: they go as later sign-outs arrive.
_REVOKE = text(
    """
WITH expired AS (DELETE FROM dashboard_revoked_sessions WHERE expires_at <= :now)
INSERT INTO dashboard_revoked_sessions (session_id, expires_at) VALUES (:session_id, :expires_at)
ON CONFLICT (session_id) DO NOTHING
"""
)
# Every signed-in page asks this: a primary-key probe, prepared, in one round trip without a transaction.
_IS_REVOKED = "SELECT EXISTS (SELECT FROM dashboard_revoked_sessions WHERE session_id = :session_id)"


def count_signin_attempt(
    session: Session, client: str, now: datetime, window: timedelta
) -> tuple[int, datetime]:
    """This attempt counted: the client's attempts in its current window, and when that window began."""
    params = {"client": client, "now": now, "window_start": now - window}
    attempts, started = session.execute(_COUNT_ATTEMPT, params).one()
    return int(attempts), started


def clear_signin_attempts(session: Session, client: str) -> None:
    session.execute(_CLEAR_ATTEMPTS, {"client": client})


def revoke_session(session: Session, session_id: str, now: datetime, expires_at: datetime) -> None:
    session.execute(_REVOKE, {"session_id": session_id, "now": now, "expires_at": expires_at})


def is_revoked(uow: UnitOfWork, session_id: str) -> bool:
    ((revoked,),) = uow.prepared(_IS_REVOKED, {"session_id": session_id})
    return bool(revoked)
