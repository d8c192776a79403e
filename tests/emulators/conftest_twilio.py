"""A local webhook receiver for the Twilio emulator tests: records every request it gets."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from infra.local.twilio_emulator.wsgi_thread import WsgiThread


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class WebhookReceiver:
    """Answers `answers` in turn (status codes), then `status`; always with `body` as TwiML."""

    def __init__(
        self, status: int = 200, body: str = "<Response/>", answers: list[int] | None = None
    ) -> None:
        self.status, self.body = status, body
        self._answers = list(answers or [])
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._http = WsgiThread(self._app, "127.0.0.1", 0)

    def __enter__(self) -> WebhookReceiver:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()

    def url(self, path: str) -> str:
        return self._http.base_url + path

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def statuses_by_sid(self) -> dict[str, list[str]]:
        by_sid: dict[str, list[str]] = defaultdict(list)
        for request in self.requests():
            by_sid[request.params["MessageSid"]].append(request.params["MessageStatus"])
        return dict(by_sid)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        query = request.query_string.decode()
        path = f"{request.path}?{query}" if query else request.path
        received = ReceivedRequest(path, request.form.to_dict(), dict(request.headers))
        with self._lock:
            self._requests.append(received)
            status = self._answers.pop(0) if self._answers else self.status
        return Response(self.body, status=status, mimetype="application/xml")(environ, start_response)
