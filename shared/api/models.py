"""Models every resource shares: the strict request base, the error body, ids and pages."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# Ids are PostgreSQL BIGINTs: anything outside is a 400, not a database error.
ResourceId = Annotated[int, Field(ge=1, le=2**63 - 1)]

T = TypeVar("T")


class RequestModel(BaseModel):
    """Bodies and query strings refuse unknown fields, so a typo is a 400 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. validation_error, not_found.")
    message: str = Field(description="What was wrong and what was expected.")
    details: dict[str, Any] = Field(description="Where: the field, path, row or value at fault.")


class ErrorResponse(BaseModel):
    error: ErrorInfo


class PageQuery(RequestModel):
    limit: int = Field(default=50, ge=1, le=500, description="Items per page.")
    cursor: str | None = Field(
        default=None, max_length=1000, description="`next_cursor` from the previous page."
    )


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
