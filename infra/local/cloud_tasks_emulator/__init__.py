"""A local Cloud Tasks v2 service for the unmodified google-cloud-tasks client
(docs/architecture.md, "Cloud Tasks emulator").

In-process (pytest)::

    with CloudTasksEmulator() as emulator:            # ports 0: free ports on 127.0.0.1
        channel = grpc.insecure_channel(emulator.address)
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        ...
        emulator.wait_idle(timeout=5)                 # every running queue empty, nothing in flight
        emulator.reset()                              # forget queues, tasks and reserved names

As a command: ``python -m infra.local.cloud_tasks_emulator --host 127.0.0.1 --port N --oidc-port M``
prints ``CLOUD_TASKS_EMULATOR_HOST=...`` and the OIDC issuer, certs and JWKS URLs, and stops on
SIGTERM or SIGINT.

A target verifies the OIDC token as in production, with
``id_token.verify_token(token, request, audience=..., certs_url=emulator.certs_url)`` (PEM certificates,
Google's v1 format; ``jwks_url`` serves the same key as a JWKS). Check ``iss`` against
``emulator.oidc_issuer``: ``verify_oauth2_token`` would insist on accounts.google.com.

Where the service leaves a choice open, the emulator's is:

- ``max_burst_size`` is ceil(max_dispatches_per_second), at least 1 and at most 500; the bucket starts full.
- ``X-CloudTasks-TaskRetryReason`` is ``HTTP_<status>``, ``DEADLINE_EXCEEDED`` or ``UNAVAILABLE``;
  ``X-CloudTasks-TaskExecutionCount`` counts earlier attempts answered with a status below 500.
- Backoffs and ``max_retry_duration`` keep sub-second precision (the service truncates to seconds), so
  tests can retry in tenths of a second. A task-level ``retry_config`` gets the service defaults for the
  fields it leaves unset.
- ``dispatch_deadline`` is the HTTP read timeout; its 15 s floor is a ``TaskLimits`` setting.
- Names of finished or deleted tasks stay reserved for 1 h and deleted queue names for 7 days
  (``Retention``); ``reset()`` clears both.
- Each task is dispatched once per attempt (the service may rarely dispatch twice).

Of v2beta3 only ``GetQueue`` is served, with ``read_mask`` and the queue's ``stats``
(``beta_service.py`` has the documented behaviour it follows); the health report reads the send queue
with it.

Not emulated, answered INVALID_ARGUMENT or UNIMPLEMENTED: App Engine tasks, ``oauth_token``, queue-level
``http_target``, batch task methods, IAM and CMEK.
"""

from infra.local.cloud_tasks_emulator.emulator_state import Retention
from infra.local.cloud_tasks_emulator.server import CloudTasksEmulator
from infra.local.cloud_tasks_emulator.task_validation import TaskLimits

__all__ = ["CloudTasksEmulator", "Retention", "TaskLimits"]
