"""The API describing itself."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel

from shared.api.openapi import openapi_document
from shared.api.registry import ROUTES, Context, route


class OpenApiDocument(RootModel[dict[str, Any]]):
    pass


@route(
    "GET", "/v1/openapi.json", summary="This API's OpenAPI 3.1 document", tag="meta", response=OpenApiDocument
)
def get_openapi(context: Context) -> OpenApiDocument:
    return OpenApiDocument(openapi_document(ROUTES))
