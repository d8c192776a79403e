"""POST /v1/users/import through the `api` function: each accepted body type, the report over HTTP,
and the request-level refusals (415, bad region, empty file, missing multipart part)."""

from __future__ import annotations

import io

from tests.functions.api_client import ApiClient, api, error_of

__all__ = ["api"]

CSV = b"phone,name,consent_state\n4155552671,Ana,OPT_IN\nnope,Bad,\n"


def test_csv_body_imports_good_rows_and_reports_the_bad_one(api: ApiClient) -> None:
    response = api.post("/v1/users/import", data=CSV, headers={"Content-Type": "text/csv; charset=utf-8"})

    report = response.get_json()
    assert response.status_code == 200, report
    assert (report["rows_read"], report["inserted"], report["rejected"]) == (2, 1, 1)
    assert report["rejected_rows"] == [
        {
            "row": 2,
            "value": "nope",
            "reason": "contains letters or an extension; write digits only, e.g. +14155550123",
        }
    ]
    assert api.get("/v1/users/+14155552671").get_json()["consent_state"] == "OPT_IN"


def test_multipart_upload_with_a_default_region_field(api: ApiClient) -> None:
    data = {"file": (io.BytesIO(b"phone\n030 901820\n"), "users.csv"), "default_region": "DE"}
    response = api.post("/v1/users/import", data=data, content_type="multipart/form-data")

    assert response.status_code == 200 and response.get_json()["inserted"] == 1
    assert api.get("/v1/users/+4930901820").status_code == 200


def test_multipart_json_upload_is_recognised_by_its_extension(api: ApiClient) -> None:
    data = {"file": (io.BytesIO(b'[{"phone": "+14155552671", "vip": true}]'), "users.json")}
    response = api.post("/v1/users/import", data=data, content_type="multipart/form-data")

    assert response.get_json()["inserted"] == 1
    assert api.get("/v1/users/+14155552671").get_json()["attributes"] == {"vip": True}


def test_json_array_and_ndjson_bodies(api: ApiClient) -> None:
    array = api.post("/v1/users/import", json=[{"phone": "+14155552671", "topics": ["news"]}])
    ndjson = api.post(
        "/v1/users/import",
        data=b'{"phone": "+14155552672"}\n',
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert array.get_json()["inserted"] == 1 and ndjson.get_json()["inserted"] == 1
    assert api.get("/v1/users/+14155552671").get_json()["topics"] == ["news"]


def test_query_default_region_applies_to_national_numbers(api: ApiClient) -> None:
    response = api.post(
        "/v1/users/import?default_region=gb",
        data=b"phone\n020 7946 0958\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.get_json()["inserted"] == 1


def test_unknown_default_region_is_400(api: ApiClient) -> None:
    response = api.post("/v1/users/import?default_region=XX", data=CSV, headers={"Content-Type": "text/csv"})
    assert error_of(response)["details"] == {"field": "default_region"}


def test_unsupported_media_type_is_415(api: ApiClient) -> None:
    response = api.post("/v1/users/import", data=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert error_of(response)["details"] == {"content_type": "application/xml"}


def test_empty_file_is_400_and_says_what_was_expected(api: ApiClient) -> None:
    error = error_of(api.post("/v1/users/import", data=b"", headers={"Content-Type": "text/csv"}))
    assert error["code"] == "invalid_import" and "phone column" in error["message"]


def test_multipart_without_a_file_part_is_400(api: ApiClient) -> None:
    response = api.post("/v1/users/import", data={"default_region": "US"}, content_type="multipart/form-data")
    assert error_of(response)["details"] == {"field": "file"}


def test_import_requires_the_token_too(api: ApiClient) -> None:
    assert api.raw.post("/v1/users/import", data=CSV, headers={"Content-Type": "text/csv"}).status_code == 401
