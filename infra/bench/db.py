"""Plain pg8000 connections for the harness's own setup and baselines, from the stack's DATABASE_URL."""

from __future__ import annotations

import pg8000.native
from sqlalchemy.engine import make_url


def connect(database_url: str) -> pg8000.native.Connection:
    url = make_url(database_url)
    return pg8000.native.Connection(
        url.username or "postgres",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=url.database,
        password=url.password,
    )
