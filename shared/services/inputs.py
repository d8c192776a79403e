"""What the services' inputs share: the strict model base and the field types more than one input uses.
The API validates request bodies and query strings against these, and the dashboard its forms, so the
two cannot disagree on what is valid."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Ids are PostgreSQL BIGINTs: anything outside is refused as input, never sent as a database error.
ResourceId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Topic = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]


class RequestModel(BaseModel):
    """Inputs refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")
