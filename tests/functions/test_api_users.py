"""Users through the `api` function on real PostgreSQL: auth, normalization, patch, consent (audited),
subscriptions, listing with filters and pagination, and the error shape."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from shared.config import Settings, override_settings
from shared.domain.consent_rules import operator_id
from tests.conftest import API_TOKEN, make_settings
from tests.functions.api_client import ApiClient, api, error_of
from tests.functions.apps import function_client

OLD_TOKEN = "old-token-" + "o" * 32
NEW_TOKEN = "new-token-" + "n" * 32

__all__ = ["api"]


def create(api: ApiClient, phone: str, **attributes: object) -> dict[str, object]:
    response = api.post("/v1/users", json={"phone": phone, "attributes": attributes})
    assert response.status_code in (200, 201), response.get_json()
    return dict(response.get_json())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dGVzdC1hcGktdG9rZW4="},
        {"Authorization": "Bearer"},
    ],
)
def test_requests_without_a_valid_bearer_token_get_401(api: ApiClient, headers: dict[str, str]) -> None:
    response = api.raw.get("/v1/users", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthorized"


def test_unknown_routes_are_401_before_404_so_routes_are_not_revealed(api: ApiClient) -> None:
    assert api.raw.get("/v1/nothing-here").status_code == 401
    assert error_of(api.get("/v1/nothing-here"))["code"] == "not_found"


def test_any_configured_token_is_accepted_for_rotation(database_url: str) -> None:
    override_settings(make_settings(database_url, api_tokens=f"{OLD_TOKEN}, {NEW_TOKEN}"))
    try:
        client = function_client("api")
        for token in (OLD_TOKEN, NEW_TOKEN):
            assert client.get("/v1/users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        override_settings(None)


def test_no_configured_token_refuses_every_request(database_url: str) -> None:
    override_settings(make_settings(database_url, api_tokens=None))
    try:
        client = function_client("api")
        assert client.get("/v1/users", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/v1/users", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 401
    finally:
        override_settings(None)


def test_create_normalizes_the_phone_and_then_merges_attributes(api: ApiClient) -> None:
    first = api.post(
        "/v1/users", json={"phone": "(415) 555-2671", "attributes": {"name": "Ana", "city": "SF"}}
    )
    second = api.post("/v1/users", json={"phone": "+1 415 555 2671", "attributes": {"city": "LA"}})

    assert first.status_code == 201 and second.status_code == 200
    body = second.get_json()
    assert body["phone"] == "+14155552671"
    assert body["attributes"] == {"name": "Ana", "city": "LA"}
    assert body["consent_state"] == "OPT_OUT"  # creating a user never opts them in


def test_create_reads_national_numbers_in_the_given_region(api: ApiClient) -> None:
    response = api.post("/v1/users", json={"phone": "030 901820", "default_region": "DE"})
    assert response.get_json()["phone"] == "+4930901820"


def test_get_accepts_the_phone_in_any_format(api: ApiClient) -> None:
    create(api, "+14155552671", name="Ana")
    for written in (
        "+14155552671",
        "4155552671",
        "(415) 555-2671",
        "whatsapp:+14155552671",
        "001 415 555 2671",
    ):
        response = api.get(f"/v1/users/{written}")
        assert response.status_code == 200, written
        assert response.get_json()["attributes"] == {"name": "Ana"}


def test_unknown_user_is_404_naming_it(api: ApiClient) -> None:
    response = api.get("/v1/users/+14155552671")
    assert response.status_code == 404
    assert error_of(response)["details"] == {"resource": "user", "key": "+14155552671"}


def test_invalid_phone_is_400_with_the_value_and_reason(api: ApiClient) -> None:
    error = error_of(api.post("/v1/users", json={"phone": "12345"}))

    assert error["code"] == "invalid_phone"
    assert error["details"]["value"] == "12345" and error["details"]["reason"]


def test_body_validation_errors_name_each_field(api: ApiClient) -> None:
    response = api.post("/v1/users", json={"phone": "", "attributes": [], "colour": "red"})

    assert response.status_code == 400
    fields = {e["field"] for e in error_of(response)["details"]["errors"]}
    assert fields == {"body.phone", "body.attributes", "body.colour"}


def test_malformed_json_is_400(api: ApiClient) -> None:
    response = api.post("/v1/users", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and error_of(response)["code"] == "validation_error"


def test_unknown_timezone_attribute_is_refused(api: ApiClient) -> None:
    error = error_of(
        api.post("/v1/users", json={"phone": "+14155552671", "attributes": {"timezone": "Mars/Base"}})
    )
    assert error["code"] == "invalid_timezone"


def test_nul_characters_are_a_400_not_a_database_error(api: ApiClient) -> None:
    response = api.post("/v1/users", json={"phone": "+14155552671", "attributes": {"name": "a\u0000b"}})
    assert response.status_code == 400
    assert error_of(response)["details"]["errors"][0]["field"] == "body.attributes.name"


def test_patch_merges_and_null_removes_a_key(api: ApiClient) -> None:
    create(api, "+14155552671", name="Ana", city="SF")
    response = api.patch("/v1/users/4155552671", json={"attributes": {"city": None, "plan": "gold"}})

    assert response.status_code == 200
    assert response.get_json()["attributes"] == {"name": "Ana", "plan": "gold"}
    assert api.patch("/v1/users/+14155552672", json={"attributes": {}}).status_code == 404


def test_consent_change_is_applied_and_audited_with_its_reason(api: ApiClient, engine: Engine) -> None:
    create(api, "+14155552671")
    response = api.put(
        "/v1/users/+14155552671/consent", json={"consent_state": "OPT_IN", "reason": "signed form"}
    )

    assert response.status_code == 200 and response.get_json()["consent_state"] == "OPT_IN"
    with engine.connect() as conn:
        audit = conn.execute(
            text("SELECT kind, source, detail FROM audit_events WHERE user_phone = '+14155552671'")
        ).all()
    assert [tuple(row) for row in audit] == [
        (
            "consent.changed",
            "api",
            {
                "from": "OPT_OUT",
                "to": "OPT_IN",
                "reason": "signed form",
                "operator": operator_id(API_TOKEN),
                "phone": "+***2671",
            },
        )
    ]


def test_consent_for_unknown_user_is_404_and_creates_nobody(api: ApiClient) -> None:
    response = api.put("/v1/users/+14155552671/consent", json={"consent_state": "OPT_IN", "reason": "r"})
    assert response.status_code == 404
    assert api.get("/v1/users/+14155552671").status_code == 404


def test_invalid_consent_state_is_400(api: ApiClient) -> None:
    create(api, "+14155552671")
    response = api.put("/v1/users/+14155552671/consent", json={"consent_state": "MAYBE"})
    assert error_of(response)["details"]["errors"][0]["field"] == "body.consent_state"


def test_subscriptions_are_listed_on_the_user_and_removable(api: ApiClient) -> None:
    create(api, "+14155552671")
    api.put("/v1/users/+14155552671/subscriptions/news")
    repeated = api.put("/v1/users/+14155552671/subscriptions/news")
    api.put("/v1/users/+14155552671/subscriptions/deals")

    assert repeated.status_code == 200
    assert sorted(api.get("/v1/users/+14155552671").get_json()["topics"]) == ["deals", "news"]
    removed = api.delete("/v1/users/+14155552671/subscriptions/news")
    assert removed.get_json()["topics"] == ["deals"]
    assert api.put("/v1/users/+14155552672/subscriptions/news").status_code == 404


def test_list_filters_by_consent_and_text(api: ApiClient) -> None:
    create(api, "+14155552671", name="Ana")
    create(api, "+14155552672", name="Bo")
    api.put("/v1/users/+14155552672/consent", json={"consent_state": "OPT_IN", "reason": "signed form"})

    opted_in = api.get("/v1/users?consent_state=OPT_IN").get_json()["items"]
    by_text = api.get("/v1/users?q=ana").get_json()["items"]
    by_digits = api.get("/v1/users?q=555-2672").get_json()["items"]

    assert [u["phone"] for u in opted_in] == ["+14155552672"]
    assert [u["phone"] for u in by_text] == ["+14155552671"]
    assert [u["phone"] for u in by_digits] == ["+14155552672"]


def test_pagination_visits_every_user_once_in_phone_order(api: ApiClient) -> None:
    phones = [f"+1415555{n:04d}" for n in range(2671, 2678)]
    for phone in reversed(phones):
        create(api, phone)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/v1/users?{query}").get_json()
        seen += [u["phone"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == phones and pages == 3


@pytest.mark.parametrize("cursor", ["garbage", "WzFd", "e30"])
def test_a_cursor_this_api_did_not_issue_is_400(api: ApiClient, cursor: str) -> None:
    error = error_of(api.get(f"/v1/users?cursor={cursor}"))
    assert error["code"] == "invalid_cursor" and error["details"] == {"field": "cursor"}


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_limit_outside_1_to_500_is_400(api: ApiClient, limit: str) -> None:
    error = error_of(api.get(f"/v1/users?limit={limit}"))
    assert error["details"]["errors"][0]["field"] == "query.limit"


def test_wrong_method_is_a_json_405_with_allow(api: ApiClient) -> None:
    response = api.delete("/v1/users")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert error_of(response)["code"] == "method_not_allowed"


def test_settings_fixture_is_the_one_the_api_reads(settings: Settings) -> None:
    assert settings.api_token_list == [API_TOKEN]
