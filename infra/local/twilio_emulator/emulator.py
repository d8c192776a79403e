"""The Twilio emulator: Twilio's Messages API for the real SDK, plus /_emulator/* endpoints for tests.

Usable in-process (`with TwilioEmulator(...) as twilio:`) and as a command
(`python -m infra.local.twilio_emulator`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import inbound
from . import twilio_errors as errors
from .config import EmulatorConfig, Outcome
from .faults import FaultInjector
from .http_json import json_object, json_response
from .messages_endpoint import MessagesEndpoint
from .signed_post import PostFailed
from .status_callbacks import StatusCallbacks
from .store import MessageStore
from .twilio_errors import TwilioError
from .work_queue import DelayedWorkQueue
from .wsgi_thread import WsgiThread

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "emulator-auth-token"  # noqa: S105 - a local stand-in's default, guards nothing
# Twilio's WhatsApp sandbox number: the sender when a Messaging Service picks one, the inbound "To".
DEFAULT_SENDER = "+14155238886"

Handler = Callable[..., Response]


class TwilioEmulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        inbound_url: str | None = None,
        callback_delay: float = 0.05,
        out_of_order: bool = False,
        duplicate: bool = False,
        final_status: Outcome | None = None,
        outcomes: Mapping[str, Outcome] | None = None,
        sender: str = DEFAULT_SENDER,
        seed: int = 0,
        callback_workers: int = 4,
        callback_timeout: float = 15.0,
        journal: Path | None = None,
    ) -> None:
        self.account_sid, self.auth_token, self._sender = account_sid, auth_token, sender
        self.config = EmulatorConfig(
            callback_delay,
            out_of_order,
            duplicate,
            final_status or Outcome(),
            dict(outcomes or {}),
            inbound_url,
        )
        self._store = MessageStore(account_sid, journal)
        self._faults = FaultInjector(seed)
        self._queue = DelayedWorkQueue(callback_workers)
        self._callbacks = StatusCallbacks(
            self._store, self.config, self._queue, auth_token, sender, seed, callback_timeout
        )
        self._stopping = threading.Event()
        endpoint = MessagesEndpoint(
            account_sid, auth_token, self._store, self._faults, self._callbacks, self._stopping
        )
        self._http = WsgiThread(self._wsgi, host, port)
        self._routes = Map(
            [
                Rule("/2010-04-01/Accounts/<account_sid>/Messages.json", methods=["POST"], endpoint="create"),
                Rule("/2010-04-01/Accounts/<account_sid>/Messages.json", methods=["GET"], endpoint="list"),
                Rule(
                    "/2010-04-01/Accounts/<account_sid>/Messages/<message_sid>.json",
                    methods=["GET"],
                    endpoint="fetch",
                ),
                Rule("/_emulator/messages", methods=["GET"], endpoint="messages"),
                Rule("/_emulator/messages", methods=["DELETE"], endpoint="reset"),
                Rule("/_emulator/callbacks", methods=["GET"], endpoint="callbacks"),
                Rule("/_emulator/inbound", methods=["POST"], endpoint="inbound"),
                Rule("/_emulator/faults", methods=["POST"], endpoint="faults"),
                Rule("/_emulator/config", methods=["GET", "POST"], endpoint="config"),
            ]
        )
        self._handlers: dict[str, Handler] = {
            "create": endpoint.create,
            "list": endpoint.list,
            "fetch": endpoint.fetch,
            "messages": lambda request: json_response(self.messages()),
            "reset": self._reset,
            "callbacks": lambda request: json_response(self.callbacks()),
            "inbound": self._post_inbound,
            "faults": self._set_faults,
            "config": self._configure,
        }

    # --- lifecycle ---

    def start(self) -> TwilioEmulator:
        self._queue.start()
        self._http.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests held by a slow-answer fault
        self._http.stop()
        self._queue.stop()

    def __enter__(self) -> TwilioEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._http.base_url

    # --- the test-facing API (also served under /_emulator/) ---

    def messages(self) -> list[dict[str, Any]]:
        return self._store.snapshot()

    def callbacks(self) -> list[dict[str, Any]]:
        """Every status callback attempt: message_sid, message_status, url, attempt, http_status or error."""
        return self._callbacks.attempts()

    def reset(self) -> None:
        """Forget messages, pending callbacks, the callback log and faults; keep the configuration."""
        self._store.reset()
        self._queue.clear()
        self._callbacks.clear_log()
        self._faults.clear()

    def set_faults(self, spec: Mapping[str, Any]) -> None:
        """As POST /_emulator/faults: a recipient's (`to`), a sender's (`from`) or the general fault."""
        self._faults.configure(spec)

    def sender_fault(
        self,
        sender: str,
        *,
        http_status: int | None = None,
        error_code: int | None = None,
        callback_error_code: int | None = None,
        rate: float = 1.0,
    ) -> None:
        """Creates from `sender` ("whatsapp:+E164" or "+E164") are refused with `http_status`/`error_code`,
        or accepted and then fail in their status callback with `callback_error_code`; rate=0 clears it."""
        spec: dict[str, Any] = {"from": sender, "rate": rate}
        optional = {
            "http_status": http_status,
            "error_code": error_code,
            "callback_error_code": callback_error_code,
        }
        spec |= {name: value for name, value in optional.items() if value is not None}
        self.set_faults(spec)

    def wait_for_callbacks_idle(self, timeout: float) -> bool:
        return self._queue.wait_idle(timeout)

    def send_inbound(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Post a signed inbound webhook to the configured inbound URL; returns the app's answer. The
        webhook's `To` is `spec["to"]` (the business number written to), by default the emulator's sender."""
        url = self.config.inbound_url
        if url is None:
            raise ValueError("no inbound URL configured (--inbound-url or POST /_emulator/config)")
        message = inbound.InboundMessage.parse(spec, default_recipient=self._sender)
        return inbound.deliver(url, message, self.account_sid, self.auth_token)

    def inbound(
        self,
        sender: str,
        body: str = "",
        *,
        to: str | None = None,
        profile_name: str | None = None,
        message_sid: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """`sender` writes `body` to the business number `to` (default: the emulator's sender)."""
        optional = {"to": to, "profile_name": profile_name, "message_sid": message_sid, "extra": extra}
        spec = {"from": sender, "body": body} | {k: v for k, v in optional.items() if v is not None}
        return self.send_inbound(spec)

    # --- HTTP ---

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
            response = self._handlers[str(endpoint)](request, **args)
        except TwilioError as error:
            response = error.response()
        except NotFound:
            response = TwilioError.of(errors.NOT_FOUND, path=request.path).response()
        except MethodNotAllowed:
            response = TwilioError.of(errors.METHOD_NOT_ALLOWED).response()
        except ValueError as error:  # a malformed /_emulator/ request: say what was wrong
            response = json_response({"error": str(error)}, status=400)
        return response(environ, start_response)

    def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    def _set_faults(self, request: Request) -> Response:
        self.set_faults(json_object(request))
        return json_response({"ok": True})

    def _post_inbound(self, request: Request) -> Response:
        try:
            return json_response(self.send_inbound(json_object(request)))
        except PostFailed as exc:
            return json_response({"error": f"inbound webhook failed: {exc}"}, status=502)

    def _configure(self, request: Request) -> Response:
        if request.method == "POST":
            self.config.update(json_object(request))
        return json_response(self.config.as_json())
