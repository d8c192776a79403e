"""An import as an operator sends it: a file in one of the formats `import_formats` reads, and the region
for numbers written without +, streamed into `user_import.import_users` in one transaction."""

from __future__ import annotations

from datetime import datetime

from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import InvalidRegion
from shared.domain.phones import is_supported_region
from shared.services.import_formats import MEDIA_TYPES, Readable, records
from shared.services.user_import import ImportReport, import_users

# The import streams (memory holds one chunk and the listed rejects, whatever the size), so this bounds
# how long one request may run, not memory: some ten million rows of a typical file (~100 bytes a row).
IMPORT_MAX_BYTES = 1024**3
_EXTENSIONS = {".csv": "text/csv", ".json": "application/json", ".ndjson": "application/x-ndjson"}


def upload_media_type(declared: str, filename: str | None) -> str:
    """An uploaded file's format: its declared media type when it is one we read, else its name's
    extension, else CSV."""
    if declared in MEDIA_TYPES:
        return declared
    name = (filename or "").lower()
    return next((kind for ext, kind in _EXTENSIONS.items() if name.endswith(ext)), "text/csv")


def import_upload(
    uow: UnitOfWork, source: Readable, media_type: str, *, region: str, at: datetime
) -> ImportReport:
    region = region.upper()
    if not is_supported_region(region):
        raise InvalidRegion(f"unknown default_region {region!r}", field="default_region")
    with uow:
        return import_users(uow, records(source, media_type), default_region=region, at=at)
