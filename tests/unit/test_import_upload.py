"""How an uploaded import file is read: by the media type it declares when that is a format we read, else by
its name's extension, else as CSV."""

from __future__ import annotations

import pytest

from shared.services import import_upload


@pytest.mark.parametrize(
    ("declared", "filename", "read_as"),
    [
        ("application/json", "users.txt", "application/json"),
        ("application/octet-stream", "USERS.NDJSON", "application/x-ndjson"),
        ("application/octet-stream", "users.json", "application/json"),
        ("application/vnd.ms-excel", "users.csv", "text/csv"),
        ("application/octet-stream", None, "text/csv"),
    ],
)
def test_an_uploaded_file_is_read_by_its_declared_type_else_its_extension(
    declared: str, filename: str | None, read_as: str
) -> None:
    assert import_upload.upload_media_type(declared, filename) == read_as
