"""Users: create or update, read (any phone format), patch attributes, consent, subscriptions, list, over
the users service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from shared.api.auth import presented_token
from shared.api.models import Page, PageQuery, Region, ResponseModel
from shared.api.registry import Context, route
from shared.domain.consent_rules import operator_id
from shared.domain.enums import ConsentState, MessageStatus
from shared.domain.phones import normalize_phone
from shared.services import conversation as conversations
from shared.services import users as service
from shared.services.inputs import RequestModel, Topic
from shared.services.users import ConsentChange, Operator

PhoneParam = Annotated[
    str, Field(min_length=1, max_length=64, description="Any format; normalized to E.164.")
]
Attributes = dict[str, Any]


class UserOut(ResponseModel):
    phone: str = Field(validation_alias="phone_e164", description="E.164.")
    attributes: Attributes
    consent_state: ConsentState
    consent_updated_at: datetime | None
    last_inbound_at: datetime | None
    topics: list[str]
    created_at: datetime
    updated_at: datetime


class UserPage(Page[UserOut]):
    pass


class UserCreate(RequestModel):
    phone: PhoneParam
    attributes: Attributes = Field(default_factory=dict)
    default_region: Region | None = None


class UserPatch(RequestModel):
    attributes: Attributes = Field(description="Merged into the user's; a null value removes that key.")


class ConversationItem(ResponseModel):
    kind: Literal["outbound", "inbound"]
    id: int = Field(description="The message id (outbound) or the inbound event id (inbound).")
    at: datetime = Field(description="Outbound: sent_at once sent, else when queued. Inbound: received.")
    # outbound
    status: MessageStatus | None = None
    status_reason: str | None = None
    error_code: int | None = None
    body: str | None = Field(default=None, description="What was sent, or what the user wrote.")
    campaign_id: int | None = None
    campaign_name: str | None = None
    template_name: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    # inbound
    outcome: str | None = Field(default=None, description="What was made of it: consent:STOP, help, ...")
    channel: str | None = None
    profile_name: str | None = None
    in_reply_to_message_id: int | None = Field(
        default=None, description="The campaign message it answers: the last sent within 72 h before it."
    )
    in_reply_to_campaign_name: str | None = None


class ConversationPage(Page[ConversationItem]):
    pass


class UserListQuery(PageQuery):
    consent_state: ConsentState | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100, description="Phone digits or text.")


def _phone(context: Context, raw: str, region: str | None = None) -> str:
    return normalize_phone(raw, region or context.settings.default_region)


def _operator(context: Context) -> Operator:
    token = presented_token(context.request)
    return Operator("api", operator_id(token) if token else None)


@route(
    "POST",
    "/v1/users",
    summary="Create a user or merge attributes into theirs",
    tag="users",
    body=UserCreate,
    response=UserOut,
    status=201,
    other_statuses=(200,),
)
def create_user(context: Context, body: UserCreate) -> tuple[UserOut, int]:
    phone = _phone(context, body.phone, body.default_region)
    user, created = service.save_user(context.uow(), phone, body.attributes, context.clock.now())
    return UserOut.model_validate(user), 201 if created else 200


@route("GET", "/v1/users/{phone}", summary="One user, with consent and topics", tag="users", response=UserOut)
def get_user(context: Context, phone: PhoneParam) -> UserOut:
    return UserOut.model_validate(service.get_user(context.uow(), _phone(context, phone)))


@route(
    "PATCH",
    "/v1/users/{phone}",
    summary="Merge-patch a user's attributes",
    tag="users",
    body=UserPatch,
    response=UserOut,
)
def patch_user(context: Context, phone: PhoneParam, body: UserPatch) -> UserOut:
    user = service.patch_user(context.uow(), _phone(context, phone), body.attributes, context.clock.now())
    return UserOut.model_validate(user)


@route(
    "PUT",
    "/v1/users/{phone}/consent",
    summary="Set consent with a reason (audited); out of STOP it also needs evidence",
    tag="users",
    body=ConsentChange,
    response=UserOut,
    extra_errors=(409,),
)
def put_consent(context: Context, phone: PhoneParam, body: ConsentChange) -> UserOut:
    user = service.set_consent(
        context.uow(), _phone(context, phone), body, context.clock.now(), _operator(context)
    )
    return UserOut.model_validate(user)


@route(
    "GET",
    "/v1/users/{phone}/conversation",
    summary="A user's messages and replies, newest first",
    tag="users",
    query=PageQuery,
    response=ConversationPage,
)
def get_conversation(context: Context, phone: PhoneParam, query: PageQuery) -> ConversationPage:
    page = conversations.conversation(
        context.uow(), _phone(context, phone), limit=query.limit, cursor=query.cursor
    )
    return ConversationPage(items=[_item(row) for row in page.items], next_cursor=page.next_cursor)


def _item(row: Any) -> ConversationItem:
    if row.kind == 0:
        return ConversationItem(
            kind="outbound",
            id=row.id,
            at=row.at,
            status=row.status,
            status_reason=row.status_reason,
            error_code=row.error_code,
            body=row.message_body,
            campaign_id=row.campaign_id,
            campaign_name=row.campaign_name,
            template_name=row.template_name,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            read_at=row.read_at,
            failed_at=row.failed_at,
        )
    return ConversationItem(
        kind="inbound",
        id=row.id,
        at=row.at,
        body=row.inbound_body,
        outcome=row.outcome,
        channel=row.channel,
        profile_name=row.profile_name,
        in_reply_to_message_id=row.in_reply_to_message_id,
        in_reply_to_campaign_name=row.reply_campaign_name,
    )


@route(
    "PUT",
    "/v1/users/{phone}/subscriptions/{topic}",
    summary="Subscribe a user to a topic",
    tag="users",
    response=UserOut,
)
def put_subscription(context: Context, phone: PhoneParam, topic: Topic) -> UserOut:
    return UserOut.model_validate(service.subscribe(context.uow(), _phone(context, phone), topic))


@route(
    "DELETE",
    "/v1/users/{phone}/subscriptions/{topic}",
    summary="Unsubscribe a user from a topic",
    tag="users",
    response=UserOut,
)
def delete_subscription(context: Context, phone: PhoneParam, topic: Topic) -> UserOut:
    return UserOut.model_validate(service.unsubscribe(context.uow(), _phone(context, phone), topic))


@route(
    "GET",
    "/v1/users",
    summary="List users by phone, filtered by consent or text",
    tag="users",
    query=UserListQuery,
    response=UserPage,
)
def list_users(context: Context, query: UserListQuery) -> UserPage:
    page = service.list_users(
        context.uow(), limit=query.limit, cursor=query.cursor, consent_state=query.consent_state, q=query.q
    )
    return UserPage.model_validate(page, from_attributes=True)
