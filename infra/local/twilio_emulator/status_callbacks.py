"""Signed status callbacks for accepted messages: in order by default, shuffled or doubled on request.

Each message's callbacks form a chain (the next is scheduled only after the previous one was delivered
or given up on), so "in order" is a guarantee, not a likely outcome of timers racing each other.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import STATUS_SEQUENCES, EmulatorConfig, Outcome
from .messages_api import Address
from .signed_post import PostFailed, SignedPoster
from .store import MessageRecord, MessageStore
from .work_queue import DelayedWorkQueue

# Twilio's default connection overrides (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides):
# `rc=1` retry, `rp=ct`: only when the TCP connection or TLS handshake failed. A 5xx answer or a read
# timeout is not retried, so a callback answered 503 (the database briefly down) is simply lost, as in
# production: the application's reconciliation, not Twilio, makes up for it.
CONNECT_RETRIES = 1
RETRY_DELAY_SECONDS = 0.25


@dataclass(frozen=True)
class StatusEvent:
    status: str
    error_code: int | None
    idempotency_token: str


class StatusCallbacks:
    def __init__(
        self,
        store: MessageStore,
        config: EmulatorConfig,
        queue: DelayedWorkQueue,
        auth_token: str,
        sender: str,
        seed: int,
        timeout: float,
    ) -> None:
        self._store, self._config, self._queue = store, config, queue
        self._auth_token, self._sender, self._timeout = auth_token, sender, timeout
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._poster = SignedPoster()

    def start(self, record: MessageRecord, outcome: Outcome | None = None) -> None:
        """Schedule the message's callbacks towards `outcome`, by default the configured one for its `To`."""
        outcome = outcome or self._config.outcome_for(record.request.to.number)
        statuses = list(STATUS_SEQUENCES[outcome.status])
        if self._config.out_of_order:
            statuses = self._shuffled(statuses)
        events = [
            StatusEvent(s, outcome.error_code if s == outcome.status else None, str(uuid.uuid4()))
            for s in statuses
        ]
        copies = 2 if self._config.duplicate else 1
        steps = [event for event in events for _ in range(copies)]
        self._schedule(record, steps, self._store.generation, attempt=1, delay=self._config.callback_delay)

    def attempts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _shuffled(self, statuses: list[str]) -> list[str]:
        shuffled = list(statuses)
        with self._lock:
            self._rng.shuffle(shuffled)
        if shuffled == statuses:
            # A shuffle may land on the original order; out-of-order mode must actually be out of order.
            shuffled.reverse()
        return shuffled

    def _schedule(
        self, record: MessageRecord, steps: list[StatusEvent], generation: int, attempt: int, delay: float
    ) -> None:
        self._queue.submit(delay, lambda: self._deliver(record, steps, generation, attempt))

    def _deliver(
        self, record: MessageRecord, steps: list[StatusEvent], generation: int, attempt: int
    ) -> None:
        if self._store.generation != generation:
            return
        event, rest = steps[0], steps[1:]
        self._store.advance(record.sid, event.status, event.error_code)
        connect_failed = record.request.status_callback is not None and self._post(record, event, attempt)
        if connect_failed and attempt <= CONNECT_RETRIES:
            self._schedule(record, steps, generation, attempt + 1, RETRY_DELAY_SECONDS)
            return
        if rest:
            self._schedule(record, rest, generation, attempt=1, delay=self._config.callback_delay)

    def _post(self, record: MessageRecord, event: StatusEvent, attempt: int) -> bool:
        """Post one callback and log the attempt; True when the connection itself failed (a retry case)."""
        url = record.request.status_callback
        assert url is not None
        entry: dict[str, Any] = {
            "message_sid": record.sid,
            "message_status": event.status,
            "url": url,
            "attempt": attempt,
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "http_status": None,
            "error": None,
        }
        connect_failed = False
        try:
            response = self._poster.post(
                url, self._params(record, event), self._auth_token, event.idempotency_token, self._timeout
            )
            entry["http_status"] = response.status
        except PostFailed as exc:
            entry["error"] = str(exc)
            connect_failed = exc.connect_failed
        with self._lock:
            self._log.append(entry)
        return connect_failed

    def _params(self, record: MessageRecord, event: StatusEvent) -> dict[str, str]:
        request = record.request
        sender = request.from_ or Address(request.to.channel, self._sender)
        params = {
            "AccountSid": record.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": record.sid,
            "SmsSid": record.sid,
            "MessageStatus": event.status,
            "SmsStatus": event.status,
            "To": str(request.to),
            "From": str(sender),
        }
        if request.to.channel:
            params |= {"ChannelPrefix": request.to.channel, "ChannelToAddress": request.to.number}
        if request.messaging_service_sid:
            params["MessagingServiceSid"] = request.messaging_service_sid
        if event.error_code is not None:
            params["ErrorCode"] = str(event.error_code)
        return params
