"""Templates and segments through the `api` function: CRUD, derived variables, invalid placeholders and
DSL refused with where, name conflicts, deletion while in use, and audience previews."""

from __future__ import annotations

from typing import Any

from tests.functions.api_client import ApiClient, api, error_of

__all__ = ["api"]

CITY_IS_LIMA = {"attribute": "city", "operator": "equals", "value": "Lima"}


def make_template(
    api: ApiClient, name: str = "welcome", content: str = "Hi {first_name|there}, {city}!"
) -> dict[str, Any]:
    response = api.post("/v1/templates", json={"name": name, "content": content})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def make_segment(
    api: ApiClient, name: str = "lima", definition: dict[str, Any] = CITY_IS_LIMA
) -> dict[str, Any]:
    response = api.post("/v1/segments", json={"name": name, "definition": definition})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def test_template_variables_are_derived_from_the_content(api: ApiClient) -> None:
    template = make_template(api)

    assert template["variables"] == ["first_name", "city"]
    assert template["content_sid"] is None
    assert api.get(f"/v1/templates/{template['id']}").get_json()["variables"] == ["first_name", "city"]


def test_invalid_placeholder_syntax_is_400_with_the_position(api: ApiClient) -> None:
    error = error_of(api.post("/v1/templates", json={"name": "bad", "content": "Hi {first name}"}))

    assert error["code"] == "invalid_template"
    assert error["details"] == {"field": "content", "position": 3}


def test_content_sid_must_look_like_a_content_template(api: ApiClient) -> None:
    response = api.post("/v1/templates", json={"name": "t", "content": "x", "content_sid": "HX123"})
    assert error_of(response)["details"]["errors"][0]["field"] == "body.content_sid"
    ok = api.post("/v1/templates", json={"name": "t", "content": "x", "content_sid": "HX" + "a" * 32})
    assert ok.status_code == 201


def test_duplicate_template_name_is_409(api: ApiClient) -> None:
    make_template(api)
    error = error_of(api.post("/v1/templates", json={"name": "welcome", "content": "x"}))
    assert error["code"] == "name_taken" and error["details"]["field"] == "name"


def test_template_patch_changes_only_given_fields_and_can_clear_content_sid(api: ApiClient) -> None:
    template = make_template(api)
    api.patch(f"/v1/templates/{template['id']}", json={"content_sid": "HX" + "b" * 32})
    patched = api.patch(
        f"/v1/templates/{template['id']}", json={"content": "Bye {name}", "content_sid": None}
    )

    body = patched.get_json()
    assert (body["name"], body["content"], body["content_sid"], body["variables"]) == (
        "welcome",
        "Bye {name}",
        None,
        ["name"],
    )
    assert api.patch(f"/v1/templates/{template['id']}", json={"name": None}).status_code == 400


def test_template_delete_then_404(api: ApiClient) -> None:
    template = make_template(api)
    assert api.delete(f"/v1/templates/{template['id']}").status_code == 204
    assert api.get(f"/v1/templates/{template['id']}").status_code == 404
    assert api.delete(f"/v1/templates/{template['id']}").status_code == 404


def test_template_and_segment_in_use_by_a_campaign_cannot_be_deleted(api: ApiClient) -> None:
    template, segment = make_template(api), make_segment(api)
    api.post("/v1/campaigns", json={"name": "c", "template_id": template["id"], "segment_id": segment["id"]})

    assert error_of(api.delete(f"/v1/templates/{template['id']}"))["code"] == "in_use"
    assert error_of(api.delete(f"/v1/segments/{segment['id']}"))["code"] == "in_use"


def test_template_list_paginates_by_id(api: ApiClient) -> None:
    ids = [make_template(api, name=f"t{n}")["id"] for n in range(5)]
    first = api.get("/v1/templates?limit=2").get_json()
    second = api.get(f"/v1/templates?limit=2&cursor={first['next_cursor']}").get_json()
    third = api.get(f"/v1/templates?limit=2&cursor={second['next_cursor']}").get_json()

    assert [t["id"] for t in first["items"] + second["items"] + third["items"]] == ids
    assert third["next_cursor"] is None


def test_non_numeric_or_out_of_range_ids_are_400(api: ApiClient) -> None:
    for bad in ("abc", "0", str(2**63)):
        assert (
            error_of(api.get(f"/v1/templates/{bad}"))["details"]["errors"][0]["field"] == "path.template_id"
        )


def test_invalid_segment_dsl_is_400_naming_the_bad_node(api: ApiClient) -> None:
    definition = {
        "operator": "AND",
        "conditions": [CITY_IS_LIMA, {"attribute": "age", "operator": "around", "value": 3}],
    }
    error = error_of(api.post("/v1/segments", json={"name": "bad", "definition": definition}))

    assert error["code"] == "invalid_segment"
    assert error["details"]["path"].startswith("conditions[1]")


def test_segment_crud(api: ApiClient) -> None:
    segment = make_segment(api)
    other = {"attribute": "vip", "operator": "exists", "value": True}
    patched = api.patch(f"/v1/segments/{segment['id']}", json={"definition": other}).get_json()

    assert (patched["name"], patched["definition"]) == ("lima", other)
    assert (
        error_of(api.post("/v1/segments", json={"name": "lima", "definition": other}))["code"] == "name_taken"
    )
    assert [s["id"] for s in api.get("/v1/segments").get_json()["items"]] == [segment["id"]]
    assert api.delete(f"/v1/segments/{segment['id']}").status_code == 204
    assert api.get(f"/v1/segments/{segment['id']}").status_code == 404


def _users(api: ApiClient) -> None:
    for phone, city, opted_in in [
        ("+14155552671", "Lima", True),
        ("+14155552672", "Lima", True),
        ("+14155552673", "Lima", False),
        ("+14155552674", "Quito", True),
    ]:
        api.post("/v1/users", json={"phone": phone, "attributes": {"city": city}})
        if opted_in:
            api.put(f"/v1/users/{phone}/consent", json={"consent_state": "OPT_IN", "reason": "test"})
    api.put("/v1/users/+14155552672/subscriptions/news")


def test_preview_counts_only_opted_in_matches_and_samples_them(api: ApiClient) -> None:
    _users(api)
    preview = api.post("/v1/segments/preview", json={"definition": CITY_IS_LIMA, "sample_size": 1}).get_json()

    assert preview == {"audience_size": 2, "sample": ["+14155552671"]}


def test_preview_of_a_saved_segment_with_a_topic(api: ApiClient) -> None:
    _users(api)
    segment = make_segment(api)

    assert api.get(f"/v1/segments/{segment['id']}/preview").get_json()["audience_size"] == 2
    with_topic = api.get(f"/v1/segments/{segment['id']}/preview?topic=news").get_json()
    assert with_topic == {"audience_size": 1, "sample": ["+14155552672"]}
    assert api.get("/v1/segments/999/preview").status_code == 404


def test_preview_of_invalid_dsl_is_400(api: ApiClient) -> None:
    error = error_of(
        api.post("/v1/segments/preview", json={"definition": {"operator": "XOR", "conditions": []}})
    )
    assert error["code"] == "invalid_segment" and "path" in error["details"]


def test_renaming_a_template_to_a_taken_name_is_409(api: ApiClient) -> None:
    make_template(api, name="a")
    second = make_template(api, name="b")
    error = error_of(api.patch(f"/v1/templates/{second['id']}", json={"name": "a"}))
    assert error["code"] == "name_taken" and error["details"]["value"] == "a"
