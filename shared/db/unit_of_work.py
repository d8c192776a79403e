"""The unit of work: the one way services reach the database. The service enters, the service commits.

- `with uow: ...; uow.commit()` is one transaction on `uow.session`; it rolls back unless committed. A unit
  of work may be entered again and again, a new transaction each time.
- `uow.prepared(sql, params)` runs one hot statement as a server-side prepared statement
  (shared.db.queries.prepared): inside `with uow:` it joins that transaction; outside, it is a transaction
  of its own (PostgreSQL runs a single statement atomically), in one round trip instead of a
  transaction's seven.
- `with uow.pinned(): ...` runs every transaction and statement of the block on one pooled connection,
  for work whose state lives in the database session across transactions (the send's advisory locks:
  shared.db.queries.send_guard). If the block fails, that connection is discarded, not pooled, so the
  session state ends with it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.db.queries.prepared import run_prepared

# One session factory per engine: building a sessionmaker creates a new Session class, which costs more
# than the short transactions of a webhook or a send (measured: ~2.6% of send_message's CPU).
_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def _factory_for(engine: Engine) -> sessionmaker[Session]:
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories[engine] = sessionmaker(bind=engine, expire_on_commit=False)
    return factory


class UnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = _factory_for(engine)
        self._pinned: Connection | None = None
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """The open transaction's session; only inside `with uow:`."""
        if self._session is None:
            raise RuntimeError("the unit of work has no open transaction: enter it with `with uow:`")
        return self._session

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("the unit of work already has an open transaction")
        self._session = self._factory() if self._pinned is None else self._factory(bind=self._pinned)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        assert session is not None
        session.rollback()
        session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def prepared(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run `sql` (pg8000's `:name` placeholders) prepared: in the open transaction if there is one,
        else as its own."""
        if self._session is not None:
            return run_prepared(self._session.connection(), sql, params, autocommit=False)
        if self._pinned is not None:
            return run_prepared(self._pinned, sql, params, autocommit=True)
        with self.engine.connect() as conn:
            return run_prepared(conn, sql, params, autocommit=True)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Every transaction and statement of the block on one connection, discarded if the block fails."""
        if self._pinned is not None or self._session is not None:
            raise RuntimeError("pin the unit of work before its transactions, and only once")
        with self.engine.connect() as conn:
            self._pinned = conn
            try:
                yield
            except BaseException:
                conn.invalidate()
                raise
            finally:
                self._pinned = None
