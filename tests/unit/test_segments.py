"""Compile-level tests of the segment DSL: structure, validation errors and bound parameters.
What the queries return is proven on PostgreSQL in tests/integration/test_segment_queries.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import ClauseElement
from sqlalchemy.engine import make_url

from shared.db.queries.segments import audience_query, count_query, segment_condition
from shared.domain.errors import InvalidSegment
from shared.domain.segments import MAX_DEPTH, MAX_NODES, MAX_VALUES, Compound, Condition, Not, parse_segment

HOSTILE = "x'); DROP TABLE users;--"
# The dialect the engine uses (shared/db/engine.py), as its URL names it.
PG8000 = make_url("postgresql+pg8000://").get_dialect()()


def leaf(attribute: Any = "city", operator: str = "equals", value: Any = "Lima") -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


def compiled(query: ClauseElement) -> tuple[str, dict[str, Any]]:
    result = query.compile(dialect=PG8000)
    return str(result), result.params


def test_nested_tree_parses_into_nodes_with_normalized_operators() -> None:
    definition = {
        "operator": "and",
        "conditions": [
            leaf("age", "GT", 30),
            {
                "operator": "Not",
                "condition": {"operator": "OR", "conditions": [leaf(), leaf("vip", "exists")]},
            },
        ],
    }
    del definition["conditions"][1]["condition"]["conditions"][1]["value"]  # type: ignore[index]
    assert parse_segment(definition) == Compound(
        "AND",
        (
            Condition("age", "gt", 30),
            Not(Compound("OR", (Condition("city", "equals", "Lima"), Condition("vip", "exists", True)))),
        ),
    )


@pytest.mark.parametrize(
    ("definition", "path", "message_part"),
    [
        ("city = 'Lima'", "", "expected an object"),
        ({}, "operator", "missing operator"),
        ({"operator": "like"}, "operator", "unknown operator 'like'"),
        ({"operator": "AND"}, "conditions", "AND needs a list of conditions"),
        ({"operator": "OR", "conditions": []}, "conditions", "an empty OR matches nobody"),
        ({"operator": "AND", "conditions": [leaf(), "oops"]}, "conditions[1]", "expected an object"),
        (
            {
                "operator": "AND",
                "conditions": [leaf(), {"operator": "OR", "conditions": [leaf(), {"operator": 3}]}],
            },
            "conditions[1].conditions[1].operator",
            "operator 3 is not text",
        ),
        ({"operator": "NOT"}, "condition", "expected an object"),
        ({"operator": "NOT", "condition": leaf(operator="near")}, "condition.operator", "unknown operator"),
        ({"operator": "NOT", "conditions": [leaf()]}, "conditions", "unexpected key 'conditions'"),
        ({**leaf(), "valeu": 1}, "valeu", "unexpected key 'valeu'"),
        (leaf(attribute=""), "attribute", "expected the name of a user attribute"),
        (leaf(attribute=42), "attribute", "expected the name"),
        (leaf(attribute="a\x00b"), "attribute", "NUL"),
        (leaf(attribute="a" * 1001), "attribute", "longer than 1000"),
        (leaf(value=None), "value", "to match a missing attribute use exists"),
        (leaf(value="bad\x00"), "value", "NUL"),
        (leaf(value={"k": float("nan")}), "value.k", "not finite"),
        (leaf(value="\ud800"), "value", "not UTF-8"),
        (leaf(attribute="a\udc80"), "attribute", "not UTF-8"),
        (leaf(operator="gt", value=10**400), "value", "beyond ±1.8e308"),
        (leaf(operator="in", value=["a", -(10**309)]), "value[1]", "beyond ±1.8e308"),
        (leaf(operator="in", value="Lima"), "value", "non-empty list"),
        (leaf(operator="in", value=[]), "value", "non-empty list"),
        (leaf(operator="in", value=["a", ["b"]]), "value[1]", "expected a text, number"),
        (leaf(operator="contains", value=""), "value", "non-empty"),
        (leaf(operator="exists", value="yes"), "value", "true or false"),
        (leaf(operator="gt", value="30"), "value", "expected a number, got '30'"),
        (leaf(operator="lte", value=True), "value", "expected a number"),
        (leaf(operator="gte", value=float("inf")), "value", "not finite"),
        (leaf(operator="before", value="31/05/2024"), "value", "ISO-8601 date"),
        (leaf(operator="after", value="2024-02-30"), "value", "not a calendar date"),
        (leaf(operator="after", value=20240501), "value", "ISO-8601 date"),
    ],
)
def test_malformed_definition_names_the_path_of_the_bad_node(
    definition: object, path: str, message_part: str
) -> None:
    with pytest.raises(InvalidSegment) as err:
        parse_segment(definition)
    assert err.value.details == {"path": path}
    assert message_part in err.value.message
    assert err.value.message.startswith(f"{path or 'segment'}: ")
    assert err.value.code == "invalid_segment"


def test_unknown_operator_error_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidSegment) as err:
        parse_segment(leaf(operator="startswith"))
    assert "AND, OR, NOT, equals, not_equals, in, contains, exists, gt, gte, lt, lte, before, after" in (
        err.value.message
    )


def test_tree_nested_deeper_than_the_limit_is_refused_where_it_gets_too_deep() -> None:
    definition: dict[str, Any] = leaf()
    for _ in range(MAX_DEPTH):
        definition = {"operator": "NOT", "condition": definition}
    with pytest.raises(InvalidSegment, match="nested more than 20 levels") as err:
        parse_segment(definition)
    assert err.value.details["path"] == ".".join(["condition"] * MAX_DEPTH)


def test_tree_at_the_depth_limit_is_accepted() -> None:
    definition: dict[str, Any] = leaf()
    for _ in range(MAX_DEPTH - 1):
        definition = {"operator": "NOT", "condition": definition}
    parse_segment(definition)


def test_tree_with_too_many_conditions_is_refused() -> None:
    with pytest.raises(InvalidSegment, match=f"more than {MAX_NODES} conditions"):
        parse_segment({"operator": "OR", "conditions": [leaf()] * MAX_NODES})


def test_tree_with_too_many_values_is_refused() -> None:
    big_in = leaf(operator="in", value=list(range(MAX_VALUES // 2 + 1)))
    with pytest.raises(InvalidSegment, match=f"more than {MAX_VALUES} values") as err:
        parse_segment({"operator": "OR", "conditions": [big_in, big_in]})
    assert err.value.details["path"] == "conditions[1].value"


def test_exists_without_value_means_present() -> None:
    assert parse_segment({"attribute": "email", "operator": "exists"}) == Condition("email", "exists", True)


def test_empty_and_means_every_opted_in_user() -> None:
    sql, params = compiled(audience_query({"operator": "AND", "conditions": []}))
    assert "WHERE users.consent_state = %s::VARCHAR ORDER BY" in sql
    assert params == {"consent_state_1": "OPT_IN"}


def test_hostile_attribute_names_and_values_only_appear_as_bound_parameters() -> None:
    definition = {
        "operator": "OR",
        "conditions": [
            leaf(HOSTILE, op, value)
            for op, value in [
                ("equals", HOSTILE),
                ("not_equals", {HOSTILE: [HOSTILE]}),
                ("in", [HOSTILE]),
                ("contains", HOSTILE),
                ("exists", True),
                ("gt", 1),
                ("before", "2024-01-01"),
            ]
        ],
    }
    sql, params = compiled(audience_query(definition))
    assert "DROP" not in sql
    assert "'" not in sql
    assert HOSTILE in params.values()


def test_audience_query_always_requires_opt_in_and_orders_by_phone_for_keyset_paging() -> None:
    sql, params = compiled(audience_query(leaf(), after="+14155550000", limit=500))
    assert "users.consent_state = %s" in sql
    assert sql.rstrip().endswith("ORDER BY users.phone_e164 \n LIMIT %s::INTEGER")
    assert "users.phone_e164 > %s" in sql
    assert params["consent_state_1"] == "OPT_IN"
    assert params["phone_e164_1"] == "+14155550000"


def test_audience_with_a_topic_requires_a_subscription() -> None:
    sql, params = compiled(count_query(leaf(), topic="promos"))
    assert "EXISTS (SELECT" in sql and "subscriptions.topic = %s" in sql
    assert params["topic_1"] == "promos"


def test_segment_condition_accepts_an_already_parsed_tree() -> None:
    node = parse_segment(leaf())
    assert str(segment_condition(node)) == str(segment_condition(leaf()))


def test_bad_definition_fails_before_any_sql_is_built() -> None:
    with pytest.raises(InvalidSegment):
        audience_query({"operator": "AND", "conditions": [leaf(operator="like")]})
