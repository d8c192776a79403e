"""Models every resource of the API shares: the response base, the error body, pages and regions. The
request base and the ids come from the services' inputs (shared.services.inputs), which the dashboard's
forms validate against too."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.services.inputs import RequestModel

T = TypeVar("T")

Region = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 region for national numbers.")]


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
