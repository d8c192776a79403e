from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import InvalidTemplate, MissingVariables
from shared.domain.templates import (
    MAX_TEMPLATE_LENGTH,
    recipient_variables,
    render,
    render_content_variables,
    template_variables,
    validate_content_variables,
    validate_template,
)


def test_placeholders_are_filled_from_variables() -> None:
    assert render("Hi {first_name}, order {order_id}", {"first_name": "Ana", "order_id": "A-7"}) == (
        "Hi Ana, order A-7"
    )


def test_phone_is_always_the_recipients_own_even_if_an_attribute_says_otherwise() -> None:
    variables = recipient_variables("+14155552671", {"phone": "+10000000000", "city": "Lima"})
    assert render("{phone} in {city}", variables) == "+14155552671 in Lima"


def test_fallback_is_used_when_the_value_is_absent_null_or_blank() -> None:
    for variables in ({}, {"first_name": None}, {"first_name": ""}, {"first_name": "   "}):
        assert render("Hi {first_name|there}!", variables) == "Hi there!"


def test_fallback_is_ignored_when_the_value_is_present() -> None:
    assert render("Hi {first_name|there}!", {"first_name": "Ana"}) == "Hi Ana!"


def test_fallback_keeps_spaces_and_later_bars_verbatim() -> None:
    assert render("[{x| a|b }]", {}) == "[ a|b ]"


def test_empty_fallback_makes_a_variable_optional() -> None:
    assert render("Hi{nickname|}!", {}) == "Hi!"


def test_missing_variables_without_fallback_are_all_named_once_in_order() -> None:
    with pytest.raises(MissingVariables) as err:
        render("{b} {a|ok} {c} {b}", {"a": None})
    assert err.value.names == ["b", "c"]
    assert err.value.code == "missing_variables"
    assert err.value.message == "missing template variable(s): b, c"


def test_non_text_values_are_written_as_json() -> None:
    variables: dict[str, Any] = {"n": 42, "x": 1.5, "vip": True, "tags": ["a", "b"], "zero": 0}
    assert render("{n} {x} {vip} {tags} {zero}", variables) == '42 1.5 true ["a", "b"] 0'


def test_doubled_braces_are_literal_and_not_variables() -> None:
    assert render("{{not_a_var}} {{ {x} }}", {"x": "1"}) == "{not_a_var} { 1 }"
    assert template_variables("{{not_a_var}}") == []


def test_spaces_around_a_name_are_allowed() -> None:
    assert render("{ first_name }", {"first_name": "Ana"}) == "Ana"


def test_template_variables_are_ordered_and_unique() -> None:
    assert template_variables("{b} {a|x} {b} {c}") == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("content", "position", "message_part"),
    [
        ("Hi {first_name", 3, "'{' is never closed"),
        ("Hi first_name}", 13, "'}' has no matching '{'"),
        ("Hi {}", 3, "bad variable name ''"),
        ("Hi {1st}", 3, "bad variable name '1st'"),
        ("Hi {first name}", 3, "bad variable name 'first name'"),
        ("Hi {a{b}}", 3, "'{' is never closed"),
    ],
)
def test_malformed_template_error_gives_the_position_and_how_to_fix(
    content: str, position: int, message_part: str
) -> None:
    with pytest.raises(InvalidTemplate) as err:
        validate_template(content)
    assert err.value.details == {"field": "content", "position": position}
    assert message_part in err.value.message
    with pytest.raises(InvalidTemplate):
        render(content, {})


def test_unbalanced_brace_error_suggests_doubling() -> None:
    with pytest.raises(InvalidTemplate) as err:
        validate_template("50% off {today")
    assert "write '{{' or '}}' for a literal brace" in err.value.message


def test_empty_template_is_invalid() -> None:
    with pytest.raises(InvalidTemplate, match="empty"):
        validate_template("  \n")


def test_template_longer_than_the_database_allows_is_invalid() -> None:
    validate_template("x" * MAX_TEMPLATE_LENGTH)
    with pytest.raises(InvalidTemplate, match="the limit is 4096"):
        validate_template("x" * (MAX_TEMPLATE_LENGTH + 1))


def test_content_variables_map_positions_to_rendered_values() -> None:
    mapping = {"1": "first_name", "2": "city|your city", "3": "{order_id}"}
    assert render_content_variables(mapping, {"first_name": "Ana", "order_id": 7}) == {
        "1": "Ana",
        "2": "your city",
        "3": "7",
    }


def test_content_variables_missing_value_names_the_variable() -> None:
    with pytest.raises(MissingVariables) as err:
        render_content_variables({"1": "first_name", "2": "last_name"}, {"last_name": "Q"})
    assert err.value.names == ["first_name"]


@pytest.mark.parametrize("spec", [42, None, "first name", ""])
def test_content_variables_with_a_bad_spec_name_the_key(spec: object) -> None:
    with pytest.raises(InvalidTemplate) as err:
        validate_content_variables({"1": "ok", "2": spec})
    assert err.value.details["field"] == "content_variables.2"


_text_without_braces = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30)


@given(literal=_text_without_braces, value=_text_without_braces.filter(lambda s: s.strip() != ""))
def test_escaped_literal_text_and_any_value_render_verbatim(literal: str, value: str) -> None:
    content = "{{" + literal + "}} {v}"
    assert render(content, {"v": value}) == "{" + literal + "} " + value
