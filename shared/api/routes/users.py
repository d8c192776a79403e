"""Users: create or update, read (any phone format), patch attributes, consent, subscriptions, list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from shared.api.errors import NotFound
from shared.api.models import Page, PageQuery, RequestModel, ResponseModel
from shared.api.pagination import decode_cursor, page_of
from shared.api.registry import Context, route
from shared.db.queries import users as queries
from shared.domain.enums import ConsentState
from shared.domain.phones import normalize_phone
from shared.services import users as service

PhoneParam = Annotated[
    str, Field(min_length=1, max_length=64, description="Any format; normalized to E.164.")
]
Topic = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
Region = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 region for national numbers.")]
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


class UserCreate(RequestModel):
    phone: PhoneParam
    attributes: Attributes = Field(default_factory=dict)
    default_region: Region | None = None


class UserPatch(RequestModel):
    attributes: Attributes = Field(description="Merged into the user's; a null value removes that key.")


class ConsentChange(RequestModel):
    consent_state: ConsentState
    reason: str | None = Field(default=None, max_length=500, description="Kept in the audit trail.")


class UserListQuery(PageQuery):
    consent_state: ConsentState | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100, description="Phone digits or text.")


def _phone(context: Context, raw: str, region: str | None = None) -> str:
    return normalize_phone(raw, region or context.settings.default_region)


def _user(context: Context, phone: str) -> UserOut:
    with context.uow() as uow:
        row = queries.get_user(uow.session, phone)
    if row is None:
        raise NotFound("user", phone)
    return UserOut.model_validate(row)


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
    with context.uow() as uow:
        created = service.save_user(uow, phone, body.attributes, context.clock.now())
    return _user(context, phone), 201 if created else 200


@route("GET", "/v1/users/{phone}", summary="One user, with consent and topics", tag="users", response=UserOut)
def get_user(context: Context, phone: PhoneParam) -> UserOut:
    return _user(context, _phone(context, phone))


@route(
    "PATCH",
    "/v1/users/{phone}",
    summary="Merge-patch a user's attributes",
    tag="users",
    body=UserPatch,
    response=UserOut,
)
def patch_user(context: Context, phone: PhoneParam, body: UserPatch) -> UserOut:
    e164 = _phone(context, phone)
    with context.uow() as uow:
        if not service.patch_user(uow, e164, body.attributes, context.clock.now()):
            raise NotFound("user", e164)
    return _user(context, e164)


@route(
    "PUT",
    "/v1/users/{phone}/consent",
    summary="Set consent (audited with source api)",
    tag="users",
    body=ConsentChange,
    response=UserOut,
)
def put_consent(context: Context, phone: PhoneParam, body: ConsentChange) -> UserOut:
    e164 = _phone(context, phone)
    with context.uow() as uow:
        if not service.set_consent(uow, e164, body.consent_state, context.clock.now(), body.reason):
            raise NotFound("user", e164)
    return _user(context, e164)


@route(
    "PUT",
    "/v1/users/{phone}/subscriptions/{topic}",
    summary="Subscribe a user to a topic",
    tag="users",
    response=UserOut,
)
def put_subscription(context: Context, phone: PhoneParam, topic: Topic) -> UserOut:
    e164 = _phone(context, phone)
    with context.uow() as uow:
        if not service.subscribe(uow, e164, topic):
            raise NotFound("user", e164)
    return _user(context, e164)


@route(
    "DELETE",
    "/v1/users/{phone}/subscriptions/{topic}",
    summary="Unsubscribe a user from a topic",
    tag="users",
    response=UserOut,
)
def delete_subscription(context: Context, phone: PhoneParam, topic: Topic) -> UserOut:
    e164 = _phone(context, phone)
    with context.uow() as uow:
        if not service.unsubscribe(uow, e164, topic):
            raise NotFound("user", e164)
    return _user(context, e164)


class UserPage(Page[UserOut]):
    pass


@route(
    "GET",
    "/v1/users",
    summary="List users by phone, filtered by consent or text",
    tag="users",
    query=UserListQuery,
    response=UserPage,
)
def list_users(context: Context, query: UserListQuery) -> UserPage:
    after = decode_cursor(query.cursor, [str])
    with context.uow() as uow:
        rows = queries.list_users(
            uow.session,
            consent_state=query.consent_state,
            q=query.q,
            after_phone=after[0] if after else None,
            limit=query.limit + 1,
        )
    items, cursor = page_of(rows, query.limit, key=lambda row: [row.phone_e164])
    return UserPage(items=[UserOut.model_validate(row) for row in items], next_cursor=cursor)
