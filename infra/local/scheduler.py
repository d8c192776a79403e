"""Cloud Scheduler's every-minute call to `trigger_campaign`, locally.

Each tick becomes a task on the emulator's `local-scheduler` queue: a POST with an empty body and an
OIDC token for the scheduler's service account with the function's URL as audience, signed by the
emulator's issuer (whose certificates OIDC_CERTS_URL points at). So `trigger_campaign` verifies the
local call exactly as it verifies Cloud Scheduler's in production, and nothing here mints tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from google.api_core.exceptions import GoogleAPICallError
from google.cloud import tasks_v2

from infra.local.emulator_clients import cloud_tasks
from infra.local.tasks_queues import SCHEDULER_QUEUE

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_SECONDS = 60.0


class LocalScheduler:
    def __init__(
        self, tasks_address: str, queue_path: str, url: str, service_account_email: str, interval: float
    ) -> None:
        self._tasks_address, self._queue_path = tasks_address, queue_path
        self._url, self._service_account_email = url, service_account_email
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def tick_once(self) -> None:
        """One tick now, as `gcloud scheduler jobs run` forces one (make smoke)."""
        client = cloud_tasks(self._tasks_address)
        try:
            self._tick(client)
        finally:
            client.transport.close()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        client = cloud_tasks(self._tasks_address)
        try:
            # Cloud Scheduler fires on the schedule, not at job creation: wait one interval first.
            while not self._stopping.wait(self._interval):
                self._tick(client)
        finally:
            client.transport.close()  # type: ignore[no-untyped-call]

    def _tick(self, client: tasks_v2.CloudTasksClient) -> None:
        task = tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=self._url,
                http_method=tasks_v2.HttpMethod.POST,
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=self._service_account_email, audience=self._url
                ),
            )
        )
        try:
            client.create_task(parent=self._queue_path, task=task)
        except GoogleAPICallError as error:
            # A missed tick is what Cloud Scheduler does when it cannot deliver either; the next one
            # starts whatever is still due.
            log.warning("scheduler tick not delivered: %s", error)


def local_scheduler(env: Mapping[str, str], interval: float = DEFAULT_INTERVAL_SECONDS) -> LocalScheduler:
    """The scheduler job of a local stack, from its settings (.local/stack.env)."""
    queue = f"projects/{env['GCP_PROJECT']}/locations/{env['GCP_REGION']}/queues/{SCHEDULER_QUEUE}"
    return LocalScheduler(
        tasks_address=env["CLOUD_TASKS_EMULATOR_HOST"],
        queue_path=queue,
        url=env["TRIGGER_CAMPAIGN_URL"],
        service_account_email=env["SCHEDULER_SERVICE_ACCOUNT_EMAIL"],
        interval=interval,
    )
