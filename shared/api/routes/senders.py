"""Senders and frequency caps: the pool's senders with their state and current rate, adding one, pausing
(with a reason) and resuming it; the per-user frequency caps, read and replaced whole. Every change is
audited with the operator (docs/architecture.md, "Operating senders and caps")."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.api.auth import presented_token
from shared.api.models import ResponseModel
from shared.api.registry import Context, route
from shared.domain.consent_rules import operator_id
from shared.domain.enums import SenderState
from shared.services import frequency_caps as caps_service
from shared.services import senders as service
from shared.services.frequency_caps import FrequencyCapsIn, FrequencyCapView
from shared.services.inputs import ResourceId
from shared.services.senders import SenderIn, SenderPause, SenderView
from shared.services.users import Operator


class SenderOut(ResponseModel):
    id: int
    address: str = Field(description="whatsapp:+E164, or a Messaging Service SID (MG...).")
    pool: str
    rate_limit_per_second: int
    state: SenderState
    paused_reason: str | None = Field(
        description="Why it is paused: the operator's reason, or Twilio's error."
    )
    paused_by: str | None = Field(
        description="`operator`, or `twilio` (paused by the send path on an error)."
    )
    paused_at: datetime | None
    last_error_code: int | None = Field(description="The last Twilio error a send from it met.")
    last_error_meaning: str | None = Field(description="Twilio's meaning of last_error_code, with its link.")
    last_error_at: datetime | None
    current_rate: float = Field(description="Sends claimed from it in the last 60 seconds, per second.")
    errors_last_hour: int = Field(description="Messages claimed from it in the last hour with an error code.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: SenderView) -> SenderOut:
        return cls.model_validate(vars(view))


class SenderList(ResponseModel):
    items: list[SenderOut] = Field(description="Every sender, by pool then address.")
    pools: list[str] = Field(description="Every pool with at least one sender.")


class SenderActionOut(SenderOut):
    changed: bool = Field(description="False when the sender already was in the requested state.")


class FrequencyCapOut(ResponseModel):
    max_messages: int
    window_hours: int


class FrequencyCapsOut(ResponseModel):
    caps: list[FrequencyCapOut] = Field(description="Every cap, shortest window first; [] means no caps.")

    @classmethod
    def of(cls, views: list[FrequencyCapView]) -> FrequencyCapsOut:
        return cls(caps=[FrequencyCapOut.model_validate(view) for view in views])


def _operator(context: Context) -> Operator:
    token = presented_token(context.request)
    return Operator("api", operator_id(token) if token else None)


@route(
    "GET",
    "/v1/senders",
    summary="List senders with their state and current rate",
    tag="senders",
    response=SenderList,
)
def list_senders(context: Context) -> SenderList:
    items = [SenderOut.of(view) for view in service.list_senders(context.uow(), context.clock)]
    return SenderList(items=items, pools=sorted({item.pool for item in items}))


@route(
    "POST",
    "/v1/senders",
    summary="Add a sender to a pool (audited)",
    tag="senders",
    body=SenderIn,
    response=SenderOut,
    status=201,
    extra_errors=(409,),
)
def add_sender(context: Context, body: SenderIn) -> SenderOut:
    return SenderOut.of(service.add_sender(context.uow(), context.clock, body, _operator(context)))


@route("GET", "/v1/senders/{sender_id}", summary="One sender", tag="senders", response=SenderOut)
def get_sender(context: Context, sender_id: ResourceId) -> SenderOut:
    return SenderOut.of(service.get_sender(context.uow(), context.clock, sender_id))


@route(
    "POST",
    "/v1/senders/{sender_id}/pause",
    summary="Pause a sender: no send goes out from it until it is resumed (audited)",
    tag="senders",
    body=SenderPause,
    body_optional=True,
    response=SenderActionOut,
)
def pause_sender(context: Context, sender_id: ResourceId, body: SenderPause) -> SenderActionOut:
    view, changed = service.pause_sender(context.uow(), context.clock, sender_id, body, _operator(context))
    return SenderActionOut.model_validate({**vars(view), "changed": changed})


@route(
    "POST",
    "/v1/senders/{sender_id}/resume",
    summary="Resume a paused sender, whoever paused it (audited)",
    tag="senders",
    response=SenderActionOut,
)
def resume_sender(context: Context, sender_id: ResourceId) -> SenderActionOut:
    view, changed = service.resume_sender(context.uow(), context.clock, sender_id, _operator(context))
    return SenderActionOut.model_validate({**vars(view), "changed": changed})


@route(
    "GET",
    "/v1/frequency-caps",
    summary="The per-user frequency caps",
    tag="senders",
    response=FrequencyCapsOut,
)
def get_frequency_caps(context: Context) -> FrequencyCapsOut:
    return FrequencyCapsOut.of(caps_service.get_caps(context.uow()))


@route(
    "PUT",
    "/v1/frequency-caps",
    summary="Replace the per-user frequency caps ([] removes them; audited)",
    tag="senders",
    body=FrequencyCapsIn,
    response=FrequencyCapsOut,
)
def put_frequency_caps(context: Context, body: FrequencyCapsIn) -> FrequencyCapsOut:
    views = caps_service.replace_caps(context.uow(), context.clock, body, _operator(context))
    return FrequencyCapsOut.of(views)
