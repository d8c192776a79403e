"""POST /2010-04-01/Accounts/{sid}/Messages.json: authenticate, validate, suffer any injected fault (the
recipient's, the sender's, or the general one; see faults.py), record the message and start its status
callbacks."""

from __future__ import annotations

import hmac
import threading
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from . import messages_read
from . import twilio_errors as errors
from .config import Outcome
from .faults import FaultInjector
from .http_json import json_response
from .messages_api import NewMessage, parse_create
from .status_callbacks import StatusCallbacks
from .store import MessageStore
from .twilio_errors import TwilioError
from .wsgi_thread import RECEIVED_AT


class MessagesEndpoint:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        store: MessageStore,
        faults: FaultInjector,
        callbacks: StatusCallbacks,
        stopping: threading.Event,
    ) -> None:
        self._account_sid, self._auth_token = account_sid, auth_token
        self._store, self._faults, self._callbacks = store, faults, callbacks
        self._stopping = stopping

    def create(self, request: Request, account_sid: str) -> Response:
        # `date_created` is "when the Message resource was created"
        # (https://www.twilio.com/docs/messaging/api/message-resource): by Twilio's API, as the request
        # reaches it. Here that is when the request's first bytes reached this host, the kernel's receive
        # stamp (wsgi_thread.py): the emulator's own Python work (reading, parsing, authenticating,
        # validating) shares this machine's CPU with the stack it measures and would stamp a send later
        # than it arrived, by tens of milliseconds under load.
        received = request.environ.get(RECEIVED_AT)
        self._authenticate(request, account_sid)
        message = parse_create(request.form)
        sender = message.from_.number if message.from_ is not None else None
        fault = self._faults.pick(message.to.number, sender)
        if fault is None:
            return json_response(self._accept(message, received), status=201)
        resource = self._accept(message, received, fault.callback_outcome) if fault.accept else None
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.error is not None:
            raise fault.error
        return json_response(resource, status=201)

    def fetch(self, request: Request, account_sid: str, message_sid: str) -> Response:
        self._authenticate(request, account_sid)
        return json_response(messages_read.fetch(self._store, message_sid, request.path))

    def list(self, request: Request, account_sid: str) -> Response:
        self._authenticate(request, account_sid)
        return json_response(messages_read.read_page(self._store, account_sid, request.args))

    def _accept(
        self, message: NewMessage, received: datetime | None, outcome: Outcome | None = None
    ) -> dict[str, Any]:
        """Record the message (created when `received`, else now) and start its callbacks; `outcome` (a
        callback fault) overrides the configured final status."""
        record = self._store.accept(message, received)
        resource = record.twilio_resource()  # before callbacks start moving the status on
        self._callbacks.start(record, outcome)
        return resource

    def _authenticate(self, request: Request, account_sid: str) -> None:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not _same(auth.username, self._account_sid)
            or not _same(auth.password, self._auth_token)
        ):
            raise TwilioError.of(errors.AUTHENTICATE)
        if account_sid != self._account_sid:
            # Twilio does not reveal whether another account's resources exist.
            raise TwilioError.of(errors.NOT_FOUND, path=request.path)


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())
