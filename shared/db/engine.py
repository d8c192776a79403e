"""The SQLAlchemy engine, built lazily once per instance (never at import: cold starts and tests).

Locally DATABASE_URL points at PostgreSQL; in production the Cloud SQL Python Connector is the
engine's creator, with LAZY certificate refresh because Cloud Functions throttle CPU between requests.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine

from shared.config import Settings, get_settings

_lock = threading.Lock()
_engine: Engine | None = None
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
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        # Cloud SQL and local servers both drop idle connections; recycle before they do.
        "pool_recycle": 1800,
        "pool_pre_ping": True,
    }
    if settings.database_url is not None:
        return create_engine(settings.database_url.get_secret_value(), **pool)
    if settings.instance_connection_name:
        return create_engine("postgresql+pg8000://", creator=_cloud_sql_creator(settings), **pool)
    raise RuntimeError("no database configured: set DATABASE_URL or INSTANCE_CONNECTION_NAME")


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = make_engine(get_settings())
    return _engine


def reset_engine() -> None:
    """Dispose the process-wide engine (tests switch databases; settings may have changed)."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
