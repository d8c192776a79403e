"""pg8000 reports every server error as one DatabaseError class, so SQLAlchemy cannot map constraint
violations to IntegrityError; the SQLSTATE in the server's error fields says what happened."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
# Worth retrying: the transaction lost a race or the server went away.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P03", "08000", "08003", "08006"})


def sqlstate(exc: BaseException) -> str | None:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        code = args[0].get("C")
        return str(code) if code is not None else None
    return None


def answered_by_the_server(exc: BaseException) -> bool:
    """The error is one the server reported (it carries a SQLSTATE), so the driver read the whole reply."""
    return sqlstate(exc) is not None


def is_transient(exc: BaseException) -> bool:
    """The database is unreachable, the pool is exhausted, or a transaction lost a race: the caller
    should answer "retry later". pg8000 reports a refused connection as InterfaceError."""
    if isinstance(exc, InterfaceError | OperationalError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return sqlstate(exc) in TRANSIENT_SQLSTATES
