"""The boundary rule, on its own: what text, numbers, JSON and bodies may cross into the system."""

from __future__ import annotations

import io

import pytest
from flask import Flask

from shared.boundary import (
    BIGINT_MAX,
    MAX_JSON_DEPTH,
    NotJson,
    Refused,
    TooLarge,
    bounded_int,
    check_fields,
    form_fields,
    parse_json,
    read_body,
    storage_problem,
    text_problem,
    whole_number,
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain", None),
        ("émoji 🙂 and \u2028", None),
        ("a\x00b", "contains a NUL character"),
        ("\ud800", "is not UTF-8 text (a lone surrogate, or bytes that are not UTF-8)"),
    ],
)
def test_text_is_utf8_without_nul(text: str, problem: str | None) -> None:
    assert text_problem(text) == problem


def test_the_first_problem_is_named_by_its_path_in_document_order() -> None:
    value = {"ok": [1, "fine"], "list": [0, {"k\ud800": 1}], "later": "\x00"}
    assert storage_problem(value, "body") == ("body.list[1].k\\ud800", text_problem("\ud800"))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (float("nan"), "is a number that is not finite"),
        (float("-inf"), "is a number that is not finite"),
        (10**309, "is a number beyond ±1.8e308, the range JSON readers agree on"),
        (-(10**309), "is a number beyond ±1.8e308, the range JSON readers agree on"),
    ],
)
def test_numbers_must_be_finite_and_within_what_json_readers_agree_on(value: float, why: str) -> None:
    assert storage_problem({"n": value}) == ("n", why)
    assert storage_problem({"n": 10**308, "ok": True, "none": None}) is None


def test_nesting_is_bounded_without_recursing() -> None:
    deep: object = "leaf"
    for _ in range(10_000):
        deep = [deep]
    where, why = storage_problem(deep) or ("", "")
    assert where == "[0]" * MAX_JSON_DEPTH
    assert why == f"is nested more than {MAX_JSON_DEPTH} levels deep"


@pytest.mark.parametrize(
    ("raw", "error", "field"),
    [
        (b'{"a": "\\ud800"}', Refused, "body.a"),
        (b'{"a": "\xff"}', Refused, "body"),
        (b"[" * 100_000 + b"]" * 100_000, Refused, "body"),
        (b'{"a": ' + b"9" * 5000 + b"}", Refused, "body"),
        (b'{"a": NaN}', Refused, "body.a"),
        (b'{"a": ', NotJson, "body"),
    ],
)
def test_json_the_boundary_refuses_says_where(raw: bytes, error: type[Refused], field: str) -> None:
    with pytest.raises(error) as caught:
        parse_json(raw, "body")
    assert caught.value.field == field


def test_a_form_is_decoded_without_loss_and_its_bad_field_named() -> None:
    fields = form_fields(b"Body=caf%C3%A9+ok&Bad=%FF&Empty=&flag")
    assert fields == [("Body", "café ok"), ("Bad", "\udcff"), ("Empty", ""), ("flag", "")]
    assert fields[1][1].encode("utf-8", "surrogateescape") == b"\xff"
    with pytest.raises(Refused) as caught:
        check_fields(fields, "query")
    assert caught.value.field == "query.Bad"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("42", 42),
        ("0", 0),
        (str(BIGINT_MAX), BIGINT_MAX),
        (str(BIGINT_MAX + 1), None),
        ("٣", None),
        (" 3", None),
        ("9" * 5000, None),
        ("²", None),
    ],
)
def test_whole_numbers_are_ascii_digits_within_the_column(text: str, number: int | None) -> None:
    assert whole_number(text, BIGINT_MAX) == number


@pytest.mark.parametrize("value", [True, 1.0, "1", None, 0, 11])
def test_bounded_int_takes_json_integers_within_range_only(value: object) -> None:
    with pytest.raises(Refused, match="id: expected an integer from 1 to 10"):
        bounded_int(value, "id", 1, 10)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_is_read_up_to_its_cap_and_refused_past_it(chunked: bool) -> None:
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    environ = {"wsgi.input_terminated": True} if chunked else {}
    app = Flask(__name__)
    for size, refused in ((100, False), (101, True)):
        with app.test_request_context(
            "/",
            method="POST",
            input_stream=io.BytesIO(b"x" * size),
            headers=headers,
            environ_overrides=environ,
        ) as context:
            assert (context.request.content_length is None) is chunked
            if refused:
                with pytest.raises(TooLarge):
                    read_body(context.request, 100)
            else:
                assert read_body(context.request, 100) == b"x" * size
