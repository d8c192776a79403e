"""The emulator as one object: the gRPC API, the OIDC endpoints and the dispatch workers."""

import ssl
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

import grpc

from infra.local.cloud_tasks_emulator.beta_service import beta_service_handler
from infra.local.cloud_tasks_emulator.emulator_state import EmulatorState, Retention
from infra.local.cloud_tasks_emulator.grpc_service import service_handler
from infra.local.cloud_tasks_emulator.http_dispatch import Dispatcher
from infra.local.cloud_tasks_emulator.oidc_server import OidcServer
from infra.local.cloud_tasks_emulator.task_validation import TaskLimits

_API_WORKERS = 16
_SERVICE_RETENTION = Retention()
_SERVICE_TASK_LIMITS = TaskLimits()


class CloudTasksEmulator:
    """Cloud Tasks v2 on 127.0.0.1, for `CloudTasksClient` over an insecure channel to `address`.

    Ports 0 pick free ones. `dispatch_workers` bounds how many HTTP attempts run at once across all
    queues, on top of each queue's own max_concurrent_dispatches.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        oidc_port: int = 0,
        *,
        retention: Retention = _SERVICE_RETENTION,
        task_limits: TaskLimits = _SERVICE_TASK_LIMITS,
        dispatch_workers: int = 200,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context`: how dispatches to https targets identify the caller (the local stack passes the
        Google-internal client certificate, so the front-end emulator admits them to internal functions)."""
        self._oidc = OidcServer(host, oidc_port)
        self._dispatch_pool = ThreadPoolExecutor(dispatch_workers, thread_name_prefix="cloud-tasks-dispatch")
        deliver = Dispatcher(self._oidc.issuer.mint, ssl_context)
        self._state = EmulatorState(self._dispatch_pool, deliver, retention, task_limits)
        self._api_pool = ThreadPoolExecutor(_API_WORKERS, thread_name_prefix="cloud-tasks-api")
        self._server = grpc.server(self._api_pool)
        self._server.add_generic_rpc_handlers(
            (service_handler(self._state), beta_service_handler(self._state))
        )
        bound_port = self._server.add_insecure_port(f"{host}:{port}")
        if bound_port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.address = f"{host}:{bound_port}"

    @property
    def oidc_issuer(self) -> str:
        return self._oidc.issuer.issuer_url

    @property
    def certs_url(self) -> str:
        """PEM certificates by key id: the format of Google's oauth2/v1/certs."""
        return self._oidc.certs_url

    @property
    def jwks_url(self) -> str:
        return self._oidc.jwks_url

    @property
    def discovery_url(self) -> str:
        return self._oidc.discovery_url

    def mint_id_token(self, service_account_email: str, audience: str) -> str:
        """An ID token from the emulator's issuer, as IAM Credentials' generateIdToken would return one."""
        return self._oidc.issuer.mint(service_account_email, audience)

    def start(self) -> Self:
        self._oidc.start()
        self._server.start()
        return self

    def wait_idle(self, timeout: float) -> bool:
        """True once no attempt is in flight and every running queue is empty; False on timeout."""
        return self._state.wait_idle(timeout)

    def reset(self) -> None:
        """Drop all queues, tasks and reserved names. Attempts already in flight finish unrecorded."""
        self._state.reset()

    def stop(self, grace_seconds: float = 1.0) -> None:
        self._server.stop(grace_seconds).wait()
        self._api_pool.shutdown()
        self._state.reset()
        self._dispatch_pool.shutdown(wait=False, cancel_futures=True)
        self._oidc.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
