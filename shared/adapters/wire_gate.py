"""A check that runs at the last moment before an HTTP request's first byte is written.

A send's rate slot is judged against the moment its request reaches Twilio. Checked before the `twilio`
SDK builds the request, the SDK's own work (arguments, form encoding, headers, the session's merge) and
the thread switches it invites under load fall between the check and the bytes: on this project's two
cores that was a few milliseconds at the median and tens at the tail, on top of the lateness the check
allows (docs/architecture.md, "Late sends"). Here the check runs inside urllib3's connection, after the
connection is open and immediately before the request line and headers are written, so nothing but the
write itself follows it.

`gate(check)` arms the check for the current thread's next request. The check may sleep (until its slot)
and may say no: then `Withheld` is raised and nothing of the request has been written, so Twilio cannot
have seen it. urllib3 closes the connection (it was left mid-request) and lets the exception through;
requests and the SDK do not catch it either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_armed = threading.local()


class Withheld(Exception):
    """The gate's check said no: not a byte of the request was written."""


@contextmanager
def gate(check: Callable[[], bool]) -> Iterator[None]:
    """Run `check` right before the first byte of this thread's next request, once."""
    _armed.check = check
    try:
        yield
    finally:
        _armed.check = None


def _pass(connection: HTTPConnection) -> None:
    check: Callable[[], bool] | None = getattr(_armed, "check", None)
    if check is None:
        return
    _armed.check = None  # the request's first write only
    if connection.sock is None:
        connection.connect()  # a new connection's handshake is not part of the send
    if not check():
        raise Withheld


class _Gated(HTTPConnection):
    """Runs the armed check before the connection's `send`: the request line and headers are its first."""

    def send(self, data: Any) -> None:
        _pass(self)
        super().send(data)


class _GatedHTTPConnection(_Gated):
    pass


class _GatedHTTPSConnection(_Gated, HTTPSConnection):
    pass


class _GatedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GatedHTTPConnection


class _GatedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GatedHTTPSConnection


class GatedAdapter(HTTPAdapter):
    """requests' adapter, its pools opening gated connections (mount it for http:// and https://)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GatedHTTPConnectionPool,
            "https": _GatedHTTPSConnectionPool,
        }
