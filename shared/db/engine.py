"""How the SQLAlchemy engine is made. shared/bootstrap.py builds the process's one engine with
`make_engine`, lazily, on first use (never at import: cold starts and tests).

Locally DATABASE_URL points at PostgreSQL; in production the Cloud SQL Python Connector is the
engine's creator, with LAZY certificate refresh because Cloud Functions throttle CPU between requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from shared.config import Settings
from shared.db.errors import answered_by_the_server

# Long enough that a busy instance never pings, short enough that a connection left over from before a
# quiet spell (when Cloud Functions throttles the CPU and servers drop idle clients) is checked first.
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "idle_since"

# One Cloud SQL connector per process, shared by whatever engines are made: it holds the instance's
# certificates and a background refresh loop.
_lock = threading.Lock()
_connector: Any = None


def _cloud_sql_creator(settings: Settings) -> Any:
    password = settings.db_password.get_secret_value() if settings.db_password else None

    def connect() -> Any:
        # The Connector needs credentials and starts a background loop: only on the first connection.
        global _connector
        from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

        with _lock:
            if _connector is None:
                _connector = Connector(refresh_strategy=RefreshStrategy.LAZY)
        ip_type = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}[
            settings.db_ip_type
        ]
        return _connector.connect(
            settings.instance_connection_name,
            "pg8000",
            user=settings.db_user,
            password=password,
            db=settings.db_name,
            enable_iam_auth=settings.db_iam_auth,
            ip_type=ip_type,
        )

    return connect


def make_engine(settings: Settings) -> Engine:
    budget = settings.db_pool_size + settings.db_max_overflow
    # QueuePool closes an overflow connection when it comes back, so a pool smaller than the threads that
    # share it opened (with TLS setup) and closed a connection for every request beyond it. Keep one per
    # thread instead, within the same budget of connections per instance.
    pool_size = min(max(settings.db_pool_size, settings.threads), budget)
    pool: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": budget - pool_size,
        "pool_timeout": settings.db_pool_timeout_seconds,
        # Cloud SQL and local servers both drop idle connections; recycle before they do.
        "pool_recycle": 1800,
        # Statement parameters are what callers sent: phone numbers, message bodies. A database error is
        # logged with its statement, never with them.
        "hide_parameters": True,
    }
    if settings.database_url is not None:
        engine = create_engine(settings.database_url.get_secret_value(), **pool)
        event.listen(engine, "do_connect", _connect_or_interface_error)
    elif settings.instance_connection_name:
        creator = _as_interface_errors(_cloud_sql_creator(settings))
        engine = create_engine("postgresql+pg8000://", creator=creator, **pool)
    else:
        raise RuntimeError("no database configured: set DATABASE_URL or INSTANCE_CONNECTION_NAME")
    _ping_connections_left_idle(engine)
    _discard_connections_left_mid_statement(engine)
    return engine


def _connect_or_interface_error(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a connection; a failure the driver does not wrap becomes its InterfaceError.

    pg8000 lets a socket reset during its startup exchange escape as a bare ConnectionResetError, which no
    caller recognises as "the database is unavailable": the request answered 500 where every entry point
    answers 503 (retry later). As the driver's InterfaceError, SQLAlchemy wraps it like any refused
    connection, and shared.db.errors.is_transient says so."""
    return _as_interface_errors(lambda: dialect.connect(*cargs, **cparams), dialect.loaded_dbapi)()


def _as_interface_errors(connect: Callable[[], Any], dbapi: Any = None) -> Callable[[], Any]:
    def connect_or_raise() -> Any:
        driver = dbapi or _pg8000()
        try:
            return connect()
        except driver.Error:
            raise
        except Exception as error:  # a reset socket, a TLS or connector failure: unavailable all the same
            raise driver.InterfaceError(f"could not open a database connection: {error!r}") from error

    return connect_or_raise


def _pg8000() -> Any:
    import pg8000.dbapi

    return pg8000.dbapi


def _discard_connections_left_mid_statement(engine: Engine) -> None:
    """Never pool again a connection whose statement failed for any reason but the server's answer.

    pg8000 writes a statement's messages and then reads the replies through to ReadyForQuery. An error the
    server reports is read that way, so the connection is in step. Anything else escaping mid-statement (a
    value pg8000 cannot encode, such as a lone surrogate, after part of the statement went out; an
    OverflowError; an interrupt; a timeout) leaves unread replies on the socket, and the next request on
    that connection would read them as its own: another user's row, or none. SQLAlchemy only discards a
    connection on disconnect errors; this makes every such failure one.
    """

    @event.listens_for(engine, "handle_error")
    def _discard_unless_answered(context: ExceptionContext) -> None:
        conn = context.connection
        if answered_by_the_server(context.original_exception) or conn is None or conn.closed:
            return
        context.is_disconnect = True
        # Only this connection is in doubt: the rest of the pool stays.
        context.invalidate_pool_on_disconnect = False


@contextmanager
def driver_statement(conn: Connection) -> Iterator[None]:
    """The same rule for statements run on the driver connection itself, past SQLAlchemy's execute
    (prepared statements, COPY): any failure but the server's answer discards the connection."""
    try:
        yield
    except BaseException as error:
        if not answered_by_the_server(error) and not conn.invalidated:
            conn.invalidate(error if isinstance(error, Exception) else None)
        raise


def _ping_connections_left_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle, where a dropped one hides.

    pool_pre_ping pinged on every checkout: with pg8000 that is BEGIN, SELECT 1 and later a ROLLBACK, five
    round trips per request, more than a status callback's own work. A connection that answered moments
    ago is used as is; if the server went away meanwhile, the request fails as transient (the caller
    retries) and the broken connection is discarded.
    """
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "checkin")
    def _mark_idle(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        # A fresh connection has no mark: the pool clears `info` whenever it reconnects.
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except (dbapi_error, OSError) as error:  # pg8000 lets a reset socket escape as a bare OSError
            # The pool discards this connection and checks out another (a new one if need be).
            raise DisconnectionError(f"idle connection failed its ping: {error}") from error
