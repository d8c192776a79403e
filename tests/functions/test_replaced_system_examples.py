"""The replaced system's documented request examples, sent as its documents write them (the bodies are
the exact text, not rebuilt from dicts), succeed here with the effect the documents promise, checked in
the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from tests.functions.api_client import ApiClient, api

__all__ = ["api"]

JSON = {"Content-Type": "application/json"}

# A segment whose rule leaves out the operator (meaning equals).
SEGMENT_WITHOUT_OPERATOR = b"""{
  "name": "lima",
  "definition": {"attribute": "city", "value": "Lima"}
}"""

# A batch of users in the shape POST /v1/users/import takes (a JSON array, one object per user).
USERS_BULK = b"""[
  {"phone": "+51987654321", "first_name": "Rosa", "city": "Lima", "consent_state": "OPT_IN"},
  {"phone": "+51987654322", "first_name": "Jorge", "city": "Cusco", "consent_state": "OPT_IN"},
  {"phone": "+51987654323", "first_name": "Lucia", "city": "Lima", "consent_state": "OPT_OUT"}
]"""

# A campaign with its segment inline instead of a segment_id.
CAMPAIGN_WITH_INLINE_SEGMENT = b"""{
  "name": "Lima spring sale",
  "template_id": %d,
  "segment": {"attribute": "city", "value": "Lima"},
  "rate_limit_per_second": 10
}"""


def rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params).all()]


def test_users_bulk_imports_the_documented_batch(api: ApiClient, engine: Engine) -> None:
    response = api.post("/v1/users/bulk", data=USERS_BULK, headers=JSON)

    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["inserted"], response.get_json()["rejected"]) == (3, 0)
    assert rows(
        engine, "SELECT phone_e164, consent_state, attributes->>'city' FROM users ORDER BY phone_e164"
    ) == [
        ("+51987654321", "OPT_IN", "Lima"),
        ("+51987654322", "OPT_IN", "Cusco"),
        ("+51987654323", "OPT_OUT", "Lima"),
    ]


def test_a_segment_without_an_operator_selects_by_equality(api: ApiClient, engine: Engine) -> None:
    api.post("/v1/users/bulk", data=USERS_BULK, headers=JSON)

    response = api.post("/v1/segments", data=SEGMENT_WITHOUT_OPERATOR, headers=JSON)

    assert response.status_code == 201, response.get_json()
    segment_id = response.get_json()["id"]
    # Stored as written: the operator it leaves out is implied, not added.
    assert rows(engine, "SELECT name, definition FROM segments WHERE id = :i", i=segment_id) == [
        ("lima", {"attribute": "city", "value": "Lima"})
    ]
    preview = api.get(f"/v1/segments/{segment_id}/preview").get_json()
    # Opted-in Lima users only: Lucia (OPT_OUT) and Jorge (Cusco) are not in the audience.
    assert (preview["audience_size"], preview["sample"]) == (1, ["+51987654321"])


def test_a_campaign_with_an_inline_segment_is_created_with_its_segment(
    api: ApiClient, engine: Engine
) -> None:
    api.post("/v1/users/bulk", data=USERS_BULK, headers=JSON)
    template_id = api.post("/v1/templates", json={"name": "sale", "content": "Hola {first_name}"}).get_json()[
        "id"
    ]

    response = api.post("/v1/campaigns", data=CAMPAIGN_WITH_INLINE_SEGMENT % template_id, headers=JSON)

    assert response.status_code == 201, response.get_json()
    campaign = response.get_json()
    assert rows(
        engine,
        "SELECT c.status, c.rate_limit_per_second, s.name, s.definition->>'value'"
        " FROM campaigns c JOIN segments s ON s.id = c.segment_id WHERE c.id = :i",
        i=campaign["id"],
    ) == [("DRAFT", 10, "Lima spring sale", "Lima")]
    # Left out, so the safe default applies, and the answer says so.
    assert campaign["quiet_hours_source"] == "default"
    audience = api.get(f"/v1/segments/{campaign['segment_id']}/preview").get_json()["audience_size"]
    assert audience == 1
