"""POST /v1/users/import: a CSV, JSON or NDJSON body (or a multipart upload of one) streamed into users."""

from __future__ import annotations

from pydantic import Field

from shared.api.errors import BadRequest, UnsupportedMediaType
from shared.api.models import Region, ResponseModel
from shared.api.registry import Context, route
from shared.boundary import capped_stream, check_declared_length
from shared.services import import_upload as service
from shared.services.import_formats import MEDIA_TYPES, Readable
from shared.services.inputs import RequestModel
from shared.services.user_import import MAX_REJECTS_LISTED

_ROW = {"type": "object", "properties": {"phone": {"type": "string"}}, "additionalProperties": True}
IMPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string", "description": "Header row with a phone column."}},
    "application/json": {"schema": {"type": "array", "items": _ROW}},
    "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON object per line."}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "default_region": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
            },
            "required": ["file"],
        }
    },
}
ACCEPTED = ", ".join(sorted(MEDIA_TYPES | {"multipart/form-data"}))


class ImportQuery(RequestModel):
    default_region: Region | None = Field(
        default=None, description="For numbers written without +; a row's default_region column wins."
    )


class RejectedRowOut(ResponseModel):
    row: int = Field(description="Data row (CSV, from 1, header not counted), element or line number.")
    value: str | None = Field(description="The value at fault, usually the phone as written.")
    reason: str


class ImportReportOut(ResponseModel):
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    duplicates_merged: int = Field(description="Rows folded into an earlier row for the same phone.")
    consent_changes: int = Field(description="Users whose consent the file set or lowered (audited).")
    rejected: int
    rejected_rows: list[RejectedRowOut] = Field(description=f"The first {MAX_REJECTS_LISTED} rejected rows.")
    rejected_rows_truncated: bool


@route(
    "POST",
    "/v1/users/import",
    summary="Bulk import users from CSV, JSON or NDJSON; reports every rejected row",
    tag="users",
    query=ImportQuery,
    response=ImportReportOut,
    raw_body=IMPORT_CONTENT,
    extra_errors=(415,),
)
def import_users_file(context: Context, query: ImportQuery) -> ImportReportOut:
    request = context.request
    region = query.default_region
    source: Readable
    if request.mimetype == "multipart/form-data":
        # werkzeug spools the upload to a temporary file (memory up to 500 KB), then we stream from it.
        check_declared_length(request, service.IMPORT_MAX_BYTES)
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("validation_error", "the multipart body needs a 'file' part", field="file")
        source, media_type = upload.stream, service.upload_media_type(upload.mimetype, upload.filename)
        region = request.form.get("default_region") or region
    elif request.mimetype in MEDIA_TYPES:
        source, media_type = capped_stream(request, service.IMPORT_MAX_BYTES), request.mimetype
    else:
        raise UnsupportedMediaType(
            "unsupported_media_type", f"send the file as one of: {ACCEPTED}", content_type=request.mimetype
        )
    report = service.import_upload(
        context.uow(),
        source,
        media_type,
        region=region or context.settings.default_region,
        at=context.clock.now(),
    )
    return ImportReportOut.model_validate(report)
