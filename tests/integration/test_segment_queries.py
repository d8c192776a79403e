"""The segment compiler on real PostgreSQL: exact audiences from a seeded users table."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, insert, select

from shared.db.models import Subscription, User
from shared.db.queries.segments import audience_query, count_query

HOSTILE = "x'); DROP TABLE users;--"

# letter -> (attributes, consent); phones are +1415555000N in letter order.
SEED: dict[str, tuple[dict[str, Any], str]] = {
    "A": (
        {
            "city": "Lima",
            "age": 34,
            "tags": ["vip", "beta"],
            "signup": "2024-01-15",
            "plan": "pro",
            "score": 7.5,
        },
        "OPT_IN",
    ),
    "B": (
        {"city": "lima", "age": "41", "tags": ["beta"], "signup": "2024-06-01T10:00:00Z", "plan": "free"},
        "OPT_IN",
    ),
    "C": (
        {"city": "Cusco", "age": 19, "signup": "not a date", "nested": {"a": 1, "b": [1, 2]}, "plan": None},
        "OPT_IN",
    ),
    "D": ({}, "OPT_IN"),
    "E": (
        {"city": "São Paulo", "age": 65, "tags": [], "signup": "2023-12-31", "note": "50%_off", "vip": True},
        "OPT_IN",
    ),
    "F": ({"city": "Lima", "age": 34.0, "signup": "2024-02-30"}, "OPT_IN"),
    "G": (
        {HOSTILE: HOSTILE, "quote": "O'Brien", "%s": "percent-s", "?": "question", "ñandú 🎉": "sí"},
        "OPT_IN",
    ),
    "H": ({"city": "Lima", "age": 50, "vip": True, "plan": "pro"}, "OPT_OUT"),
    "I": ({"city": "Lima", "age": 50, "vip": True, "plan": "pro"}, "STOP"),
    "J": ({"age": 42, "note": "50 percent", "signup": 20240101}, "OPT_IN"),
    "K": ({"age": [40], "city": ["Lima"]}, "OPT_IN"),
    "L": ({"age": {"years": 40}, "city": {"name": "Lima"}}, "OPT_IN"),
}
OPTED_IN = frozenset(letter for letter, (_, consent) in SEED.items() if consent == "OPT_IN")


def phone(letter: str) -> str:
    return f"+1415555{ord(letter) - ord('A') + 1:04d}"


LETTER_OF = {phone(letter): letter for letter in SEED}


def leaf(attribute: str, operator: str, value: Any = True) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


# (definition, exact audience). Each case names the edge it pins down.
LEAF_CASES: dict[str, tuple[dict[str, Any], Set[str]]] = {
    "equals_text_is_case_sensitive_and_not_a_list_or_object": (leaf("city", "equals", "Lima"), {"A", "F"}),
    "equals_number_matches_34_and_34_point_0": (leaf("age", "equals", 34), {"A", "F"}),
    "equals_number_does_not_match_numeric_text": (leaf("age", "equals", 41), set()),
    "equals_text_does_not_match_a_number": (leaf("age", "equals", "41"), {"B"}),
    "equals_object_is_exact_not_a_superset": (leaf("nested", "equals", {"a": 1, "b": [1, 2]}), {"C"}),
    "equals_partial_object_does_not_match": (leaf("nested", "equals", {"a": 1}), set()),
    "equals_list_is_exact_not_containment": (leaf("tags", "equals", ["beta"]), {"B"}),
    "equals_bool": (leaf("vip", "equals", True), {"E"}),
    "not_equals_includes_users_without_the_attribute": (
        leaf("city", "not_equals", "Lima"),
        OPTED_IN - {"A", "F"},
    ),
    "in_matches_any_listed_value_exactly": (leaf("city", "in", ["Lima", "Cusco"]), {"A", "C", "F"}),
    "in_mixed_types": (leaf("age", "in", [34, "41", 999]), {"A", "B", "F"}),
    "contains_text_is_case_insensitive_substring_or_list_element": (
        leaf("city", "contains", "Lima"),
        {"A", "B", "F", "K"},
    ),
    "contains_partial_text": (leaf("city", "contains", "IM"), {"A", "B", "F"}),
    "contains_unicode_text": (leaf("city", "contains", "são"), {"E"}),
    "contains_list_element": (leaf("tags", "contains", "vip"), {"A"}),
    "contains_percent_is_literal_not_a_like_wildcard": (leaf("note", "contains", "%"), {"E"}),
    "contains_underscore_is_literal_not_a_like_wildcard": (leaf("note", "contains", "0_"), set()),
    "contains_underscore_literal_match": (leaf("note", "contains", "%_"), {"E"}),
    "contains_number_is_list_membership_only": (leaf("age", "contains", 40), {"K"}),
    "exists_ignores_null_values": (leaf("plan", "exists"), {"A", "B"}),
    "exists_false_includes_null_and_missing": (leaf("plan", "exists", False), OPTED_IN - {"A", "B"}),
    "gt_compares_json_numbers_and_decimal_text": (leaf("age", "gt", 34), {"B", "E", "J"}),
    "gte_includes_equal_int_and_float": (leaf("age", "gte", 34), {"A", "B", "E", "F", "J"}),
    "lt": (leaf("age", "lt", 20), {"C"}),
    "lte_with_fraction": (leaf("score", "lte", 7.5), {"A"}),
    "gt_on_text_attribute_matches_nothing_and_does_not_crash": (leaf("city", "gt", 1), set()),
    "gt_on_object_and_list_attributes_does_not_crash": (leaf("age", "gt", 39), {"B", "E", "J"}),
    "lt_ignores_text_that_is_not_a_plain_number": (leaf("note", "lt", 100), set()),
    "before_compares_iso_dates_and_skips_non_dates": (leaf("signup", "before", "2024-01-16"), {"A", "E"}),
    "after_uses_the_date_part_of_a_datetime": (leaf("signup", "after", "2024-05-31"), {"B"}),
    "after_does_not_crash_on_an_impossible_stored_date": (leaf("signup", "after", "2024-02-01"), {"B", "F"}),
    "before_on_non_date_attribute_matches_nothing": (leaf("city", "before", "2999-01-01"), set()),
    "hostile_attribute_name_and_value": (leaf(HOSTILE, "equals", HOSTILE), {"G"}),
    "quote_in_value": (leaf("quote", "equals", "O'Brien"), {"G"}),
    "driver_placeholder_as_attribute_name": (leaf("%s", "equals", "percent-s"), {"G"}),
    "question_mark_as_attribute_name": (leaf("?", "exists"), {"G"}),
    "unicode_attribute_name": (leaf("ñandú 🎉", "contains", "S"), {"G"}),
    "hostile_contains_value": (leaf("city", "contains", "'; DROP TABLE users;--"), set()),
}


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    rows = [
        {"phone_e164": phone(k), "attributes": attrs, "consent_state": c} for k, (attrs, c) in SEED.items()
    ]
    with engine.begin() as conn:
        conn.execute(insert(User), rows)
    return engine


def audience(engine: Engine, definition: Any, **kwargs: Any) -> Set[str]:
    with engine.connect() as conn:
        phones = conn.execute(audience_query(definition, **kwargs)).scalars().all()
        count = conn.execute(count_query(definition, topic=kwargs.get("topic"))).scalar_one()
    assert count == len(phones)
    return {LETTER_OF[p] for p in phones}


@pytest.mark.parametrize("case", LEAF_CASES)
def test_leaf_operator_returns_exactly_the_right_users(seeded: Engine, case: str) -> None:
    definition, expected = LEAF_CASES[case]
    assert audience(seeded, definition) == expected


def test_not_is_the_exact_complement_of_every_leaf_within_opted_in_users(seeded: Engine) -> None:
    for case, (definition, expected) in LEAF_CASES.items():
        negated = audience(seeded, {"operator": "NOT", "condition": definition})
        assert negated == OPTED_IN - expected, case


def test_not_equals_is_the_same_audience_as_not_equals_negated(seeded: Engine) -> None:
    assert audience(seeded, leaf("city", "not_equals", "Lima")) == audience(
        seeded, {"operator": "NOT", "condition": leaf("city", "equals", "Lima")}
    )


def test_nested_and_or_not_tree(seeded: Engine) -> None:
    definition = {
        "operator": "AND",
        "conditions": [
            leaf("city", "in", ["Lima", "lima"]),
            {
                "operator": "OR",
                "conditions": [
                    leaf("age", "gt", 40),
                    {"operator": "NOT", "condition": leaf("tags", "contains", "vip")},
                ],
            },
        ],
    }
    assert audience(seeded, definition) == {"B", "F"}


def test_deeply_nested_double_negations_keep_their_meaning(seeded: Engine) -> None:
    definition: dict[str, Any] = leaf("age", "gte", 34)
    for _ in range(18):
        definition = {"operator": "NOT", "condition": definition}
    assert audience(seeded, definition) == {"A", "B", "E", "F", "J"}


def test_empty_and_is_every_opted_in_user_and_never_opted_out_or_stopped(seeded: Engine) -> None:
    assert audience(seeded, {"operator": "AND", "conditions": []}) == OPTED_IN


def test_opted_out_and_stopped_users_never_appear_even_when_they_match(seeded: Engine) -> None:
    matches_h_and_i = {
        "operator": "OR",
        "conditions": [leaf("age", "equals", 50), leaf("vip", "exists"), leaf("plan", "equals", "pro")],
    }
    assert audience(seeded, matches_h_and_i) == {"A", "E"}


def test_hostile_definitions_leave_the_users_table_intact(seeded: Engine) -> None:
    for definition, _ in LEAF_CASES.values():
        audience(seeded, definition)
    with seeded.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == len(SEED)


def test_topic_limits_the_audience_to_subscribers(seeded: Engine) -> None:
    with seeded.begin() as conn:
        conn.execute(
            insert(Subscription),
            [{"user_phone": phone(k), "topic": "promos"} for k in ("A", "B", "H")]
            + [{"user_phone": phone("F"), "topic": "other"}],
        )
    assert audience(seeded, leaf("city", "contains", "lima"), topic="promos") == {"A", "B"}


def test_keyset_pages_cover_the_audience_once_in_phone_order(seeded: Engine) -> None:
    everyone = {"operator": "AND", "conditions": []}
    pages: list[list[str]] = []
    after = None
    with seeded.connect() as conn:
        while page := conn.execute(audience_query(everyone, after=after, limit=3)).scalars().all():
            pages.append(list(page))
            after = page[-1]
    flat = [p for page in pages for p in page]
    assert flat == sorted(phone(k) for k in OPTED_IN)
    assert all(len(page) <= 3 for page in pages)


_TREES = st.recursive(
    st.sampled_from(sorted(LEAF_CASES)).map(lambda case: ("leaf", case)),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["AND", "OR"]), st.lists(children, min_size=1, max_size=4)),
        st.tuples(st.just("NOT"), children),
    ),
    max_leaves=12,
)


def _definition_and_expected(tree: Any) -> tuple[dict[str, Any], frozenset[str]]:
    kind, body = tree
    if kind == "leaf":
        definition, expected = LEAF_CASES[body]
        return definition, frozenset(expected)
    if kind == "NOT":
        definition, expected = _definition_and_expected(body)
        return {"operator": "NOT", "condition": definition}, OPTED_IN - expected
    parts = [_definition_and_expected(child) for child in body]
    sets = [expected for _, expected in parts]
    combined = frozenset.intersection(*sets) if kind == "AND" else frozenset.union(*sets)
    return {"operator": kind, "conditions": [definition for definition, _ in parts]}, combined


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_TREES)
def test_any_tree_of_leaves_selects_the_set_algebra_of_their_audiences(seeded: Engine, tree: Any) -> None:
    # The seeded table is only read, so sharing the function-scoped database across examples is sound.
    definition, expected = _definition_and_expected(tree)
    assert audience(seeded, definition) == expected
