"""The `google.cloud.tasks.v2.CloudTasks` gRPC service, built on the client package's own message types.

Requests are decoded and responses encoded with google-cloud-tasks' proto-plus classes, so there are no
generated stubs to keep in step with the client. Methods not listed here (IAM, CMEK, BatchDeleteTasks,
the Operations service) answer UNIMPLEMENTED, which gRPC does by itself for unknown methods.
"""

import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.cloud import tasks_v2
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, timestamp_pb2
from google.rpc import status_pb2

from infra.local.cloud_tasks_emulator.emulator_state import EmulatorState
from infra.local.cloud_tasks_emulator.errors import RpcError, invalid, unimplemented

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"
# BatchCreateTasks' documented limit.
MAX_BATCH_TASKS = 100
_DEFAULT_PAGE_SIZE = 1000
_Item = TypeVar("_Item")


def service_handler(state: EmulatorState) -> grpc.GenericRpcHandler:
    def paused(name: str) -> tasks_v2.Queue:
        return state.set_queue_state(name, tasks_v2.Queue.State(tasks_v2.Queue.State.PAUSED))

    def resumed(name: str) -> tasks_v2.Queue:
        return state.set_queue_state(name, tasks_v2.Queue.State(tasks_v2.Queue.State.RUNNING))

    def delete_queue(r: tasks_v2.DeleteQueueRequest) -> empty_pb2.Empty:
        state.delete_queue(r.name)
        return empty_pb2.Empty()

    def delete_task(r: tasks_v2.DeleteTaskRequest) -> empty_pb2.Empty:
        state.delete_task(r.name)
        return empty_pb2.Empty()

    def list_queues(r: tasks_v2.ListQueuesRequest) -> tasks_v2.ListQueuesResponse:
        queues = [q for q in state.list_queues(r.parent) if _matches_state_filter(q, r.filter)]
        page, token = _page(queues, r.page_size, r.page_token)
        return tasks_v2.ListQueuesResponse(queues=page, next_page_token=token)

    def list_tasks(r: tasks_v2.ListTasksRequest) -> tasks_v2.ListTasksResponse:
        page, token = _page(state.list_tasks(r.parent), r.page_size, r.page_token)
        # Built on the raw message: proto-plus marshals a list field element by element.
        response = tasks_v2.ListTasksResponse.pb()(next_page_token=token)
        response.tasks.extend(tasks_v2.Task.pb(_view(t, r.response_view)) for t in page)
        wrapped: tasks_v2.ListTasksResponse = tasks_v2.ListTasksResponse.wrap(response)  # untyped wrap
        return wrapped

    def batch_create_tasks(r: Any) -> operations_pb2.Operation:
        if len(r.requests) > MAX_BATCH_TASKS:
            raise invalid(
                f"At most {MAX_BATCH_TASKS} tasks can be created in one batch, got {len(r.requests)}"
            )
        if any(request.parent != r.parent for request in r.requests):
            raise invalid("Every CreateTaskRequest of a batch must name the batch's parent queue")
        started = _now_pb()
        outcomes = state.create_tasks(r.parent, [request.task for request in r.requests])
        return _batch_operation(r.parent, r.requests, outcomes, started)

    queue = tasks_v2.Queue.serialize
    task = tasks_v2.Task.serialize
    empty = empty_pb2.Empty.SerializeToString
    handlers = {
        "CreateQueue": _unary(
            tasks_v2.CreateQueueRequest, queue, lambda r: state.create_queue(r.parent, r.queue)
        ),
        "UpdateQueue": _unary(
            tasks_v2.UpdateQueueRequest,
            queue,
            lambda r: state.update_queue(r.queue, list(r.update_mask.paths)),
        ),
        "GetQueue": _unary(tasks_v2.GetQueueRequest, queue, lambda r: state.get_queue(r.name)),
        "ListQueues": _unary(tasks_v2.ListQueuesRequest, tasks_v2.ListQueuesResponse.serialize, list_queues),
        "DeleteQueue": _unary(tasks_v2.DeleteQueueRequest, empty, delete_queue),
        "PurgeQueue": _unary(tasks_v2.PurgeQueueRequest, queue, lambda r: state.purge_queue(r.name)),
        "PauseQueue": _unary(tasks_v2.PauseQueueRequest, queue, lambda r: paused(r.name)),
        "ResumeQueue": _unary(tasks_v2.ResumeQueueRequest, queue, lambda r: resumed(r.name)),
        # The raw request message: every fan-out message is one CreateTask, and proto-plus's wrapping of
        # each field access was most of the call's cost.
        "CreateTask": _unary(
            tasks_v2.CreateTaskRequest.pb(),
            task,
            lambda r: _view(state.create_task(r.parent, r.task), r.response_view),
        ),
        "BatchCreateTasks": _unary(
            tasks_v2.BatchCreateTasksRequest.pb(),
            operations_pb2.Operation.SerializeToString,
            batch_create_tasks,
        ),
        "GetTask": _unary(
            tasks_v2.GetTaskRequest, task, lambda r: _view(state.get_task(r.name), r.response_view)
        ),
        "ListTasks": _unary(tasks_v2.ListTasksRequest, tasks_v2.ListTasksResponse.serialize, list_tasks),
        "DeleteTask": _unary(tasks_v2.DeleteTaskRequest, empty, delete_task),
        "RunTask": _unary(
            tasks_v2.RunTaskRequest, task, lambda r: _view(state.run_task(r.name), r.response_view)
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _unary(
    request_type: Any, serialize: Callable[[Any], bytes], call: Callable[[Any], Any]
) -> grpc.RpcMethodHandler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request)
        except RpcError as error:
            context.abort(error.code, error.message)

    # proto-plus classes deserialize with `deserialize`, raw protobuf classes with `FromString`.
    deserialize = getattr(request_type, "deserialize", None) or request_type.FromString
    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=deserialize, response_serializer=serialize
    )


def _view(task: tasks_v2.Task, view: int) -> tasks_v2.Task:
    """BASIC (the default) leaves out the body, which may be large or sensitive; FULL returns everything.
    Changes `task` in place: the state hands out copies."""
    if view != tasks_v2.Task.View.FULL:
        shown = tasks_v2.Task.pb(task)
        shown.http_request.body = b""
        shown.view = tasks_v2.Task.View.BASIC
    return task


def _batch_operation(
    parent: str, requests: Sequence[Any], outcomes: Sequence[tasks_v2.Task | RpcError], started: Any
) -> operations_pb2.Operation:
    """The batch's long-running operation, already done: the emulator creates the tasks before answering,
    so a client never needs GetOperation (which it does not serve). Refused tasks are in the metadata's
    failed_requests by request index, as the service reports them (an existing name: ALREADY_EXISTS)."""
    metadata = tasks_v2.BatchCreateTasksMetadata.pb()(start_time=started, end_time=_now_pb())
    response = tasks_v2.BatchCreateTasksResponse.pb()()
    for index, (request, outcome) in enumerate(zip(requests, outcomes, strict=True)):
        if isinstance(outcome, RpcError):
            metadata.failed_requests[index].CopyFrom(
                status_pb2.Status(code=outcome.code.value[0], message=outcome.message)
            )
        else:
            response.tasks.append(tasks_v2.Task.pb(_view(outcome, request.response_view)))
    metadata.state = (
        tasks_v2.BatchCreateTasksMetadata.State.PARTIALLY_SUCCEEDED
        if metadata.failed_requests
        else tasks_v2.BatchCreateTasksMetadata.State.SUCCEEDED
    )
    location = parent.rsplit("/queues/", 1)[0]
    operation = operations_pb2.Operation(name=f"{location}/operations/{secrets.token_hex(16)}", done=True)
    operation.metadata.Pack(metadata)
    operation.response.Pack(response)
    return operation


def _now_pb() -> timestamp_pb2.Timestamp:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return now


def _matches_state_filter(queue: tasks_v2.Queue, expression: str) -> bool:
    if not expression:
        return True
    field, _, value = expression.partition(":")
    if field.strip() != "state":
        raise unimplemented(f"ListQueues filter {expression!r} (only 'state: STATE')")
    state_name: str = tasks_v2.Queue.State(queue.state).name
    return state_name == value.strip()


def _page(items: Sequence[_Item], page_size: int, page_token: str) -> tuple[list[_Item], str]:
    if page_size < 0 or (page_token and not page_token.isdigit()):
        raise invalid("Invalid page_size or page_token")
    start = int(page_token or 0)
    end = start + (page_size or _DEFAULT_PAGE_SIZE)
    return list(items[start:end]), str(end) if end < len(items) else ""
