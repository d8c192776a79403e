"""What a campaign gets when the request leaves things out: DEFAULT_QUIET_HOURS when quiet hours are
omitted (and none when they are given as null), through the API and the dashboard's form; and a segment
given inline instead of by id, saved in the same transaction as the campaign."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.config import Settings, override_settings
from tests.functions.api_client import ApiClient, api, error_of
from tests.functions.dashboard_client import DashboardClient, operator, visitor

__all__ = ["api", "operator", "visitor"]

LIMA = {"attribute": "city", "operator": "equals", "value": "Lima"}


@pytest.fixture
def refs(api: ApiClient) -> dict[str, int]:
    template = api.post("/v1/templates", json={"name": "t", "content": "Hi {name|there}"}).get_json()
    segment = api.post("/v1/segments", json={"name": "s", "definition": LIMA}).get_json()
    return {"template_id": template["id"], "segment_id": segment["id"]}


def create(api: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def stored(engine: Engine, campaign_id: int) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT quiet_hours_start::text, quiet_hours_end::text, quiet_hours_source"
                    " FROM campaigns WHERE id = :i"
                ),
                {"i": campaign_id},
            ).one()
        )


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# --- quiet hours through the API ---


def test_omitted_quiet_hours_get_the_default_and_the_answer_says_so(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign = create(api, {"name": "spring", **refs})

    assert (campaign["quiet_hours_start"], campaign["quiet_hours_end"]) == ("22:00:00", "08:00:00")
    assert campaign["quiet_hours_source"] == "default"
    assert "from the default (DEFAULT_QUIET_HOURS)" in campaign["quiet_hours_note"]
    assert stored(engine, campaign["id"]) == ("22:00:00", "08:00:00", "default")
    assert api.get(f"/v1/campaigns/{campaign['id']}").get_json() == campaign


def test_explicit_nulls_turn_quiet_hours_off_and_the_answer_says_so(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign = create(api, {"name": "now", **refs, "quiet_hours_start": None, "quiet_hours_end": None})

    assert (campaign["quiet_hours_start"], campaign["quiet_hours_end"]) == (None, None)
    assert campaign["quiet_hours_source"] == "explicit"
    assert campaign["quiet_hours_note"] == "no quiet hours (turned off)"
    assert stored(engine, campaign["id"]) == (None, None, "explicit")


def test_given_quiet_hours_are_kept_as_given(api: ApiClient, refs: dict[str, int], engine: Engine) -> None:
    campaign = create(api, {"name": "x", **refs, "quiet_hours_start": "23:30", "quiet_hours_end": "07:00"})

    assert stored(engine, campaign["id"]) == ("23:30:00", "07:00:00", "explicit")
    assert "DEFAULT_QUIET_HOURS" not in campaign["quiet_hours_note"]


def test_a_stricter_operator_default_applies(
    api: ApiClient, refs: dict[str, int], engine: Engine, settings: Settings
) -> None:
    override_settings(settings.model_copy(update={"default_quiet_hours": "21:00-08:00"}))

    campaign = create(api, {"name": "strict", **refs})

    assert stored(engine, campaign["id"]) == ("21:00:00", "08:00:00", "default")


def test_a_default_turned_off_gives_none_and_says_why(
    api: ApiClient, refs: dict[str, int], engine: Engine, settings: Settings
) -> None:
    override_settings(settings.model_copy(update={"default_quiet_hours": "off"}))

    campaign = create(api, {"name": "lax", **refs})

    assert stored(engine, campaign["id"]) == (None, None, "default")
    assert campaign["quiet_hours_note"] == "no quiet hours (DEFAULT_QUIET_HOURS is off)"


@pytest.mark.parametrize(
    "fields",
    [
        {"quiet_hours_start": "22:00"},
        {"quiet_hours_end": None},
        {"quiet_hours_start": "22:00", "quiet_hours_end": None},
    ],
)
def test_half_a_pair_of_quiet_hours_is_400_naming_both_fields(
    api: ApiClient, refs: dict[str, int], engine: Engine, fields: dict[str, Any]
) -> None:
    error = error_of(api.post("/v1/campaigns", json={"name": "x", **refs, **fields}))

    assert error["code"] == "validation_error"
    assert "quiet_hours_start and quiet_hours_end" in error["message"]
    assert count(engine, "campaigns") == 0


def test_changing_quiet_hours_makes_them_explicit(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign = create(api, {"name": "x", **refs})

    changed = api.patch(f"/v1/campaigns/{campaign['id']}", json={"quiet_hours_end": "07:00"}).get_json()

    assert changed["quiet_hours_source"] == "explicit"
    assert stored(engine, campaign["id"]) == ("22:00:00", "07:00:00", "explicit")


def test_the_openapi_document_says_what_leaving_quiet_hours_out_does(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    schema = document["components"]["schemas"]["CampaignIn"]

    assert "DEFAULT_QUIET_HOURS" in schema["properties"]["quiet_hours_start"]["description"]
    assert "quiet_hours_start" not in schema.get("required", [])


# --- an inline segment ---


def test_an_inline_segment_is_saved_named_after_the_campaign(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    body = {"name": "Lima launch", "template_id": refs["template_id"], "segment": LIMA}

    campaign = create(api, body)

    segment = api.get(f"/v1/segments/{campaign['segment_id']}").get_json()
    assert (segment["name"], segment["definition"]) == ("Lima launch", LIMA)


def test_an_inline_segment_whose_name_is_taken_gets_the_next_free_number(
    api: ApiClient, refs: dict[str, int]
) -> None:
    api.post("/v1/segments", json={"name": "Lima launch", "definition": LIMA})
    api.post("/v1/segments", json={"name": "Lima launch (2)", "definition": LIMA})

    campaign = create(api, {"name": "Lima launch", "template_id": refs["template_id"], "segment": LIMA})

    assert api.get(f"/v1/segments/{campaign['segment_id']}").get_json()["name"] == "Lima launch (3)"


def test_a_long_campaign_name_still_gives_a_valid_segment_name(api: ApiClient, refs: dict[str, int]) -> None:
    name = "n" * 200
    first = create(api, {"name": name, "template_id": refs["template_id"], "segment": LIMA})
    second = create(api, {"name": name, "template_id": refs["template_id"], "segment": LIMA})

    names = [api.get(f"/v1/segments/{c['segment_id']}").get_json()["name"] for c in (first, second)]
    assert names == [name, "n" * 196 + " (2)"]


@pytest.mark.parametrize("given", ["both", "neither"])
def test_segment_id_and_segment_exactly_one_else_400_naming_both(
    api: ApiClient, refs: dict[str, int], engine: Engine, given: str
) -> None:
    body: dict[str, Any] = {"name": "x", "template_id": refs["template_id"]}
    if given == "both":
        body |= {"segment_id": refs["segment_id"], "segment": LIMA}

    error = error_of(api.post("/v1/campaigns", json=body))

    assert error["code"] == "validation_error"
    assert "segment_id and segment" in error["message"] and given in error["message"]
    assert (count(engine, "campaigns"), count(engine, "segments")) == (0, 1)


def test_a_bad_inline_segment_is_400_with_its_path_and_nothing_is_stored(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    bad = {"operator": "AND", "conditions": [LIMA, {"attribute": "age", "operator": "gt", "value": "x"}]}

    error = error_of(
        api.post("/v1/campaigns", json={"name": "x", "template_id": refs["template_id"], "segment": bad})
    )

    assert error["code"] == "invalid_segment"
    assert error["details"]["path"] == "segment.conditions[1].value"
    assert error["message"].startswith("segment.conditions[1].value: gt compares numbers")
    assert (count(engine, "campaigns"), count(engine, "segments")) == (0, 1)


def test_an_inline_segment_is_not_kept_when_the_campaign_is_refused(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    body = {"name": "x", "template_id": refs["template_id"], "segment": LIMA, "timezone": "Mars/Base"}

    error = error_of(api.post("/v1/campaigns", json=body))

    assert error["code"] == "invalid_timezone"
    assert (count(engine, "campaigns"), count(engine, "segments")) == (0, 1)


def test_an_inline_segment_with_an_unknown_template_is_refused_naming_the_template(
    api: ApiClient, engine: Engine
) -> None:
    error = error_of(api.post("/v1/campaigns", json={"name": "x", "template_id": 999, "segment": LIMA}))

    assert (error["code"], error["details"]["field"]) == ("invalid_reference", "template_id")
    assert count(engine, "segments") == 0


# --- the dashboard's form ---


def _form(engine: Engine, api_refs: dict[str, int], **fields: str) -> dict[str, str]:
    return {
        "name": "From the form",
        "template_id": str(api_refs["template_id"]),
        "segment_id": str(api_refs["segment_id"]),
        "rate_limit_per_second": "5",
        "timezone": "UTC",
        **fields,
    }


def _created_page(operator: DashboardClient, engine: Engine, form: dict[str, str]) -> tuple[int, str]:
    response = operator.post_form("/ui/campaigns/new", form, form_page="/ui/campaigns/new")
    assert response.status_code == 302, response.get_data(as_text=True)
    with engine.connect() as conn:
        campaign_id = int(conn.execute(text("SELECT max(id) FROM campaigns")).scalar_one())
    page = operator.get(f"/ui/campaigns/{campaign_id}").get_data(as_text=True)
    return campaign_id, page


def _quiet_hours_fact(page: str) -> str:
    match = re.search(r'<dd id="quiet-hours">([^<]*)</dd>', page)
    assert match is not None
    return match.group(1)


def test_the_form_offers_the_default_and_chooses_it(operator: DashboardClient, refs: dict[str, int]) -> None:
    html = operator.get("/ui/campaigns/new").get_data(as_text=True)

    assert re.search(r'value="default" checked> The default: 22:00-08:00 \(DEFAULT_QUIET_HOURS\)', html)
    assert 'value="none"' in html and 'value="custom"' in html


def test_the_form_left_at_the_default_gives_the_default_and_the_page_says_so(
    operator: DashboardClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign_id, page = _created_page(operator, engine, _form(engine, refs, quiet_hours="default"))

    assert stored(engine, campaign_id) == ("22:00:00", "08:00:00", "default")
    assert _quiet_hours_fact(page).startswith(
        "22:00-08:00 in each recipient&#39;s timezone, from the default (DEFAULT_QUIET_HOURS)"
    )


def test_the_form_can_turn_quiet_hours_off_and_the_page_says_so(
    operator: DashboardClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign_id, page = _created_page(operator, engine, _form(engine, refs, quiet_hours="none"))

    assert stored(engine, campaign_id) == (None, None, "explicit")
    assert _quiet_hours_fact(page).startswith("no quiet hours (turned off)")


def test_the_form_keeps_hours_typed_under_these_hours(
    operator: DashboardClient, refs: dict[str, int], engine: Engine
) -> None:
    form = _form(engine, refs, quiet_hours="custom", quiet_hours_start="21:00", quiet_hours_end="09:00")

    campaign_id, page = _created_page(operator, engine, form)

    assert stored(engine, campaign_id) == ("21:00:00", "09:00:00", "explicit")
    assert "DEFAULT_QUIET_HOURS" not in _quiet_hours_fact(page)


def test_the_form_refuses_times_typed_with_no_quiet_hours_chosen(
    operator: DashboardClient, refs: dict[str, int], engine: Engine
) -> None:
    form = _form(engine, refs, quiet_hours="none", quiet_hours_start="21:00", quiet_hours_end="09:00")

    response = operator.post_form("/ui/campaigns/new", form, form_page="/ui/campaigns/new")

    assert response.status_code == 400
    assert re.search(r'id="quiet_hours-error">times were typed', response.get_data(as_text=True))
    assert count(engine, "campaigns") == 0


def test_the_form_without_a_segment_says_so_under_the_segment(
    operator: DashboardClient, refs: dict[str, int], engine: Engine
) -> None:
    form = _form(engine, refs, segment_id="")

    response = operator.post_form("/ui/campaigns/new", form, form_page="/ui/campaigns/new")

    assert response.status_code == 400
    assert 'id="segment_id-error">Choose a segment.' in response.get_data(as_text=True)
