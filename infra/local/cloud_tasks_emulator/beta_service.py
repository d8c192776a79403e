"""GetQueue of `google.cloud.tasks.v2beta3.CloudTasks`: the one beta method the application calls, for the
queue's statistics, which v2's Queue does not carry.

Served as the service documents it (https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues/get
and the QueueStats reference, https://cloud.google.com/tasks/docs/reference/rest/v2beta3/QueueStats):

- the queue is the same resource v2 reads (a queue created through v2 is read here);
- ``read_mask`` absent: every field except ``stats``; ``stats`` is returned only when the mask names it
  ("If the mask is not present all fields will be returned except [Queue.stats]. [Queue.stats] will be
  returned only if it was explicitly specified in the mask."); present: only the fields it names (paths
  may be nested, e.g. ``stats.tasks_count``); a path naming no field of Queue is INVALID_ARGUMENT, as
  AIP-157 requires of read masks (https://google.aip.dev/157);
- a missing queue is NOT_FOUND, a malformed name INVALID_ARGUMENT, as v2's GetQueue;
- ``stats.tasks_count``: the tasks in the queue not yet finished: waiting, dispatched without a reply
  yet, and failed ones waiting for their retry; ``oldest_estimated_arrival_time``: the earliest schedule
  time among the tasks waiting to be dispatched (in the past when the queue is behind or paused; absent
  when none waits); ``executed_last_minute_count``: attempts that got a reply in the last 60 s, successful
  or not; ``concurrent_dispatches_count``: attempts awaiting a reply; ``effective_execution_rate``: the
  queue's max_dispatches_per_second (the service may lower it to protect a target; the emulator never does).

Every other v2beta3 method answers UNIMPLEMENTED (gRPC's answer for an unknown method).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from google.cloud import tasks_v2, tasks_v2beta3
from google.protobuf import field_mask_pb2, json_format

from infra.local.cloud_tasks_emulator.emulator_state import EmulatorState
from infra.local.cloud_tasks_emulator.errors import RpcError, invalid

BETA_SERVICE_NAME = "google.cloud.tasks.v2beta3.CloudTasks"
# The service's defaults for what v2 does not show (the v2beta3 Queue reference).
_TASK_TTL = timedelta(days=31)
_TOMBSTONE_TTL = timedelta(hours=1)
_QUEUE_PB = tasks_v2beta3.Queue.pb()


def beta_service_handler(state: EmulatorState) -> grpc.GenericRpcHandler:
    def get_queue(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            queue, stats = state.get_queue_with_stats(request.name)
            return masked(
                full_queue(queue, stats), request.read_mask if request.HasField("read_mask") else None
            )
        except RpcError as error:
            context.abort(error.code, error.message)

    handler = grpc.unary_unary_rpc_method_handler(
        get_queue,
        request_deserializer=tasks_v2beta3.GetQueueRequest.pb().FromString,
        response_serializer=_QUEUE_PB.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(BETA_SERVICE_NAME, {"GetQueue": handler})


def full_queue(queue: tasks_v2.Queue, stats: Any) -> Any:
    """The v2 queue as the v2beta3 message, with its statistics (`stats`: QueueRuntime.Stats)."""
    source = tasks_v2.Queue.pb(queue)
    beta = _QUEUE_PB(name=source.name, state=source.state, type_=tasks_v2beta3.Queue.Type.PUSH)
    for field in ("rate_limits", "retry_config", "stackdriver_logging_config"):
        if source.HasField(field):
            json_format.ParseDict(json_format.MessageToDict(getattr(source, field)), getattr(beta, field))
    if source.HasField("purge_time"):
        beta.purge_time.CopyFrom(source.purge_time)
    beta.task_ttl.FromTimedelta(_TASK_TTL)
    beta.tombstone_ttl.FromTimedelta(_TOMBSTONE_TTL)
    beta.stats.tasks_count = stats.tasks_count
    beta.stats.concurrent_dispatches_count = stats.concurrent_dispatches
    beta.stats.executed_last_minute_count = stats.executed_last_minute
    beta.stats.effective_execution_rate = source.rate_limits.max_dispatches_per_second
    if stats.oldest_eta is not None:
        beta.stats.oldest_estimated_arrival_time.FromDatetime(stats.oldest_eta)
    return beta


def masked(full: Any, mask: field_mask_pb2.FieldMask | None) -> Any:
    if mask is None or not mask.paths:
        full.ClearField("stats")
        return full
    paths = [_proto_path(path) for path in mask.paths]
    normalised = field_mask_pb2.FieldMask(paths=paths)
    if not normalised.IsValidForDescriptor(_QUEUE_PB.DESCRIPTOR):
        raise invalid(f"Invalid read_mask paths for Queue: {', '.join(mask.paths)}")
    shown = _QUEUE_PB()
    normalised.MergeMessage(full, shown)
    return shown


def _proto_path(path: str) -> str:
    """`type` is `type_` in the client package's descriptor (a Python keyword renamed by proto-plus)."""
    head, dot, rest = path.partition(".")
    return ("type_" if head == "type" else head) + dot + rest
