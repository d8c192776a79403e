"""Properties over arbitrary Unicode (lone surrogates, NUL and every control character included), through
the API and the dashboard on real PostgreSQL: segment definitions, templates and import cells never get a
5xx, never change a row they do not name, and lose nothing valid."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote_from_bytes

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from shared.config import Settings
from shared.db.queries.segments import count_query
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import DomainError
from shared.domain.segments import LEAF_OPERATORS, parse_segment
from shared.domain.templates import render
from tests.functions.api_client import ApiClient
from tests.functions.apps import function_client
from tests.functions.dashboard_client import DashboardClient
from tests.functions.hostile import PHONE_B, hostile_settings

__all__ = ["hostile_settings"]

EXAMPLES = 100
# Every code point (st.characters leaves out surrogates unless told), and often the ones that break things:
# NUL, lone surrogates, the last code points, line breaks, template braces.
_EDGES = ["\x00", "\ud800", "\udfff", "\uffff", "\U0010ffff", "\u2028", "\r", "{", "}", "|", "="]
# Drawn as lists of characters: hypothesis' text() rarely picks the edge characters out of an alphabet.
ANY_TEXT = st.lists(st.sampled_from(_EDGES) | st.characters(exclude_categories=()), max_size=30).map("".join)
# Text a file or a form could really carry: UTF-8 has no surrogates.
FILE_TEXT = st.lists(
    st.sampled_from(_EDGES[:1] + _EDGES[3:]) | st.characters(exclude_categories=["Cs"]), max_size=30
).map("".join)
NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([10**400, -(10**309), 2**63, -(2**63) - 1, 2**31, 10**308, 2**1023 * 2]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(ANY_TEXT, NUMBERS, st.booleans(), st.none())
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
LEAVES = st.fixed_dictionaries(
    {"attribute": ANY_TEXT, "operator": st.sampled_from([*LEAF_OPERATORS, "near", ""])},
    # Scalars first: each operator's own checks (numbers for gt, text for contains) are what is tried.
    optional={"value": NUMBERS | ANY_TEXT | JSON_VALUES},
)
DEFINITIONS = st.recursive(
    LEAVES,
    lambda inner: (
        st.fixed_dictionaries(
            {"operator": st.sampled_from(["AND", "OR", "and"]), "conditions": st.lists(inner, max_size=3)}
        )
        | st.fixed_dictionaries({"operator": st.just("NOT"), "condition": inner})
    ),
    max_leaves=6,
)
EXPLORE = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def api(hostile_settings: Settings, engine: Engine) -> ApiClient:
    client = ApiClient(function_client("api"))
    assert client.post("/v1/templates", json={"name": "kept", "content": "Hi {name}"}).status_code == 201
    definition = {"attribute": "n", "operator": "gt", "value": 1}
    assert client.post("/v1/segments", json={"name": "kept", "definition": definition}).status_code == 201
    return client


@pytest.fixture
def browser(api: ApiClient) -> DashboardClient:
    client = DashboardClient(function_client("api"))
    assert client.sign_in().status_code == 302
    return client


def _rows(engine: Engine) -> dict[str, list[Any]]:
    """Every row the tests seeded, whole."""
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} WHERE {where}"))]
            for table, where in (
                ("users", f"phone_e164 = '{PHONE_B}'"),
                ("templates", "name = 'kept'"),
                ("segments", "name = 'kept'"),
            )
        }


def _decimal(value: Any) -> Any:
    """The JSON value with its numbers as decimals: jsonb keeps 7.081242215330481e+16 as the number it is,
    70812422153304810, which Python then reads as an int that no float equals."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


def _json(value: Any) -> bytes:
    # As a client library writes it: every character escaped to ASCII, NaN and Infinity as JS does.
    return json.dumps(value, allow_nan=True).encode()


def _unchanged(engine: Engine, before: dict[str, list[Any]], status: int, answer: Callable[[], Any]) -> None:
    assert status < 500, answer()
    assert _rows(engine) == before


def test_segment_definitions_never_get_a_5xx_nor_change_a_row(
    api: ApiClient, browser: DashboardClient, engine: Engine
) -> None:
    before = _rows(engine)

    @EXPLORE
    @hypothesis.given(definition=DEFINITIONS, name=ANY_TEXT)
    def check(definition: dict[str, Any], name: str) -> None:
        preview = api.post(
            "/v1/segments/preview", data=_json({"definition": definition}), content_type="application/json"
        )
        _unchanged(engine, before, preview.status_code, preview.get_data)
        created = api.post(
            "/v1/segments",
            data=_json({"name": name, "definition": definition}),
            content_type="application/json",
        )
        _unchanged(engine, before, created.status_code, created.get_data)
        if created.status_code == 201:
            stored = api.get(f"/v1/segments/{created.get_json()['id']}").get_json()["definition"]
            assert _decimal(stored) == _decimal(definition)
        # The dashboard parses the JSON itself: "\ud800" escapes come through as lone surrogates there.
        form = {
            "definition": json.dumps(definition, allow_nan=True),
            "csrf_token": browser.csrf_from("/ui/segments"),
        }
        typed = browser.post("/ui/segments/preview", data=form)
        _unchanged(engine, before, typed.status_code, typed.get_data)

    check()


def test_a_definition_the_parser_accepts_always_runs_on_postgresql(
    engine: Engine, hostile_settings: Settings
) -> None:
    @EXPLORE
    @hypothesis.given(definition=DEFINITIONS)
    def check(definition: dict[str, Any]) -> None:
        try:
            node = parse_segment(definition)
        except DomainError:
            return
        with UnitOfWork(engine) as uow:
            assert uow.session.execute(count_query(node)).scalar_one() >= 0

    check()


def test_templates_never_get_a_5xx_nor_change_a_row_and_keep_what_they_were_given(
    api: ApiClient, browser: DashboardClient, engine: Engine
) -> None:
    before = _rows(engine)

    @EXPLORE
    @hypothesis.given(
        name=ANY_TEXT, content=ANY_TEXT, variables=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=2)
    )
    def check(name: str, content: str, variables: dict[str, str]) -> None:
        body = {"name": name, "content": content, "content_variables": variables}
        created = api.post("/v1/templates", data=_json(body), content_type="application/json")
        _unchanged(engine, before, created.status_code, created.get_data)
        if created.status_code == 201:
            kept = api.get(f"/v1/templates/{created.get_json()['id']}").get_json()
            assert (kept["name"], kept["content"], kept["content_variables"]) == (name, content, variables)
        form = {"name": name, "content": content, "csrf_token": browser.csrf_from("/ui/templates")}
        typed = browser.post(
            "/ui/templates",
            data="&".join(f"{k}={_quote(v)}" for k, v in form.items()),
            content_type="application/x-www-form-urlencoded",
        )
        _unchanged(engine, before, typed.status_code, typed.get_data)

    check()


def _quote(value: str) -> str:
    """Percent-encoded UTF-8, a lone surrogate written as the bytes it would be (which are not UTF-8)."""
    return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="")


def test_rendering_any_template_with_any_attributes_renders_or_says_why() -> None:
    @EXPLORE
    @hypothesis.given(content=ANY_TEXT, attributes=st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3))
    def check(content: str, attributes: dict[str, Any]) -> None:
        try:
            rendered = render(content, attributes)
        except DomainError:
            return
        assert isinstance(rendered, str)

    check()


GOOD = "+14155550399"


def test_import_cells_never_get_a_5xx_never_change_another_row_and_lose_no_valid_row(
    api: ApiClient, engine: Engine
) -> None:
    before = _rows(engine)

    @EXPLORE
    @hypothesis.given(
        rows=st.lists(
            st.fixed_dictionaries({"phone": ANY_TEXT}) | st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3),
            max_size=4,
        ),
        note=FILE_TEXT,
        cells=st.lists(st.tuples(FILE_TEXT, FILE_TEXT), max_size=4),
    )
    def check(rows: list[dict[str, Any]], note: str, cells: list[tuple[str, str]]) -> None:
        # JSON: escapes let any code point into a value or a key; the good row must come through whole.
        as_json = api.post(
            "/v1/users/import",
            data=_json([*rows, {"phone": GOOD, "note": note}]),
            content_type="application/json",
        )
        _imported(engine, before, as_json.status_code, as_json.get_data, note)
        # CSV: raw UTF-8, every character but a surrogate.
        buffer = io.StringIO()
        csv.writer(buffer).writerows([["phone", "note"], *cells, [GOOD, note]])
        as_csv = api.post("/v1/users/import", data=buffer.getvalue().encode(), content_type="text/csv")
        _imported(engine, before, as_csv.status_code, as_csv.get_data, note)

    check()


def _imported(
    engine: Engine, before: dict[str, list[Any]], status: int, answer: Callable[[], Any], note: str
) -> None:
    _unchanged(engine, before, status, answer)
    if status != 200:
        return
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT attributes FROM users WHERE phone_e164 = :p"), {"p": GOOD}
        ).scalar_one()
    if "\x00" not in note and note != "":
        assert stored.get("note") == note, "a valid cell was lost or changed"
