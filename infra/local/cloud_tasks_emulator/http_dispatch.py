"""One attempt of an HTTP task: the request Cloud Tasks sends, and what came back."""

import email.utils
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator import names
from infra.local.keepalive_http import REQUEST_ERRORS, KeepAliveClient

USER_AGENT = "Google-Cloud-Tasks"
# Cloud Tasks computes these itself; a task's own headers cannot replace them.
_RESERVED_HEADER_PREFIXES = ("x-cloudtasks-", "x-google-", "x-appengine-")
_RESERVED_HEADERS = {"host", "content-length", "user-agent"}
# Only these statuses ask the queue to slow down; the service reads Retry-After on them.
_THROTTLING_STATUSES = {429, 503}
_RPC_CODE_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


@dataclass(frozen=True)
class DispatchRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    deadline_seconds: float
    oidc_service_account: str | None
    oidc_audience: str


@dataclass(frozen=True)
class AttemptOutcome:
    http_status: int | None  # None: no response arrived (deadline exceeded, connection refused)
    retry_after_seconds: float | None
    retry_reason: str

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300

    @property
    def rpc_code(self) -> grpc.StatusCode:
        if self.http_status is None:
            timed_out = self.retry_reason == "DEADLINE_EXCEEDED"
            return grpc.StatusCode.DEADLINE_EXCEEDED if timed_out else grpc.StatusCode.UNAVAILABLE
        if self.succeeded:
            return grpc.StatusCode.OK
        default = grpc.StatusCode.INTERNAL if self.http_status >= 500 else grpc.StatusCode.FAILED_PRECONDITION
        return _RPC_CODE_BY_HTTP_STATUS.get(self.http_status, default)


def request_for(
    task: tasks_v2.Task, queue_name: str, eta: float, execution_count: int, previous: AttemptOutcome | None
) -> DispatchRequest:
    http = task.http_request
    has_oidc = "oidc_token" in http
    headers = {name: value for name, value in http.headers.items() if not _is_reserved(name, has_oidc)}
    headers |= {
        "User-Agent": USER_AGENT,
        "X-CloudTasks-QueueName": names.short_id(queue_name),
        "X-CloudTasks-TaskName": names.short_id(task.name),
        "X-CloudTasks-TaskRetryCount": str(task.dispatch_count),
        "X-CloudTasks-TaskExecutionCount": str(execution_count),
        "X-CloudTasks-TaskETA": f"{eta:.6f}",
    }
    if previous is not None:
        # The service sends 0 when the previous attempt got no response; the reason strings are not
        # documented, so the emulator's are its own: HTTP_<status>, DEADLINE_EXCEEDED or UNAVAILABLE.
        headers["X-CloudTasks-TaskPreviousResponse"] = str(previous.http_status or 0)
        headers["X-CloudTasks-TaskRetryReason"] = previous.retry_reason
    return DispatchRequest(
        url=http.url,
        method=tasks_v2.HttpMethod(http.http_method).name,
        headers=headers,
        body=http.body,
        deadline_seconds=task.dispatch_deadline.total_seconds(),
        oidc_service_account=http.oidc_token.service_account_email if has_oidc else None,
        oidc_audience=http.oidc_token.audience or http.url,
    )


class Dispatcher:
    """Sends attempts. Kept-alive connections per dispatch thread: a TCP (and TLS) connect per attempt
    would cost the target more than the request itself at hundreds of dispatches a second.

    `ssl_context` is what https targets see of the caller: locally, the client certificate that tells the
    front-end emulator a request comes from inside Google (Cloud Run's `internal` ingress admits Cloud
    Tasks); None is a plain client."""

    def __init__(
        self, mint_token: Callable[[str, str], str], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._mint_token = mint_token
        self._client = KeepAliveClient(ssl_context)

    def __call__(self, request: DispatchRequest) -> AttemptOutcome:
        return send(request, self._mint_token, self._client)


def send(
    request: DispatchRequest, mint_token: Callable[[str, str], str], client: KeepAliveClient
) -> AttemptOutcome:
    headers = dict(request.headers)
    if request.oidc_service_account is not None:
        headers["Authorization"] = f"Bearer {mint_token(request.oidc_service_account, request.oidc_audience)}"
    try:
        answer = client.request(
            request.method, request.url, request.body or None, headers, request.deadline_seconds
        )
    except TimeoutError:
        return AttemptOutcome(http_status=None, retry_after_seconds=None, retry_reason="DEADLINE_EXCEEDED")
    except REQUEST_ERRORS:
        return AttemptOutcome(http_status=None, retry_after_seconds=None, retry_reason="UNAVAILABLE")
    retry_after = None
    if answer.status in _THROTTLING_STATUSES:
        retry_after = _parse_retry_after(answer.headers.get("Retry-After"))
    reason = "" if 200 <= answer.status < 300 else f"HTTP_{answer.status}"
    return AttemptOutcome(http_status=answer.status, retry_after_seconds=retry_after, retry_reason=reason)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_reserved(header: str, has_oidc_token: bool) -> bool:
    lowered = header.lower()
    if has_oidc_token and lowered == "authorization":
        return True
    return lowered in _RESERVED_HEADERS or lowered.startswith(_RESERVED_HEADER_PREFIXES)
