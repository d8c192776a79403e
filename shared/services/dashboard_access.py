"""Who may use the dashboard, decided server-side: how often one client may try a token, and sessions
signed out before their cookie expires (a signed cookie alone would stay valid until then)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db.queries import dashboard_access as queries
from shared.db.unit_of_work import UnitOfWork

# API tokens are at least 32 bytes, so guessing one is hopeless anyway: the throttle keeps guessing from
# costing us work, and lets a person who mistyped a few times go on. Per client, counted in this window.
SIGNIN_ATTEMPTS = 10
SIGNIN_WINDOW = timedelta(minutes=15)


def signin_wait(uow: UnitOfWork, client: str, now: datetime) -> timedelta | None:
    """Count one sign-in attempt by `client`; how long it must wait before the next, once it has made
    SIGNIN_ATTEMPTS in the window (this attempt then is refused, whatever token it brings), else None."""
    with uow:
        attempts, started = queries.count_signin_attempt(uow.session, client, now, SIGNIN_WINDOW)
        uow.commit()
    return started + SIGNIN_WINDOW - now if attempts > SIGNIN_ATTEMPTS else None


def signed_in(uow: UnitOfWork, client: str) -> None:
    """A good token: the client's count starts again."""
    with uow:
        queries.clear_signin_attempts(uow.session, client)
        uow.commit()


def sign_out(uow: UnitOfWork, session_id: str, now: datetime, expires_at: datetime) -> None:
    with uow:
        queries.revoke_session(uow.session, session_id, now, expires_at)
        uow.commit()


def is_signed_out(uow: UnitOfWork, session_id: str) -> bool:
    return queries.is_revoked(uow, session_id)
