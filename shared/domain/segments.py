"""The segment DSL: its grammar and the validation of a definition into a tree of nodes. The tree is
compiled to one parameterized query over `users` by shared.db.queries.segments.

A definition is a tree of JSON objects:
- leaf: `{"attribute": "city", "operator": "equals", "value": "Lima"}`; a leaf without `operator` means
  `equals` (`{"attribute": "city", "value": "Lima"}`, as the replaced system's documents write it). Only a
  leaf: a node with `conditions` or `condition` still needs its AND / OR / NOT.
- `{"operator": "AND" | "OR", "conditions": [...]}` and `{"operator": "NOT", "condition": {...}}`,
  nested to any depth up to `MAX_DEPTH`. An empty AND means "every opted-in user"; an empty OR is refused.

Leaf operators, on the top-level attribute named by `attribute` (a dot is just a character of the name):
- `equals`, `not_equals`: exact JSON equality, so the string "42" is not the number 42.
  `not_equals` is NOT `equals`: users without the attribute are included.
- `in`: equals one of a list of scalars.
- `contains`: a text attribute containing the value (case-insensitive substring), or a list attribute
  having the value as an element (exact).
- `exists`: the attribute is present and not null (`"value": false` for absent or null).
- `gt`, `gte`, `lt`, `lte`: numeric comparison of JSON numbers and of text that is a plain decimal
  number ("41", "-2.5": CSV imports store every cell as text); any other value never matches.
- `before`, `after`: the attribute is text starting with an ISO-8601 date (`2024-05-31`, optionally
  followed by a time) and its date, as written, is before/after the value (a `YYYY-MM-DD` date).

Every leaf is strictly true or false for every user, so `NOT` is an exact complement.
Consent is applied on top of any definition: only OPT_IN users are an audience.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.boundary import number_problem, text_problem
from shared.domain.errors import InvalidSegment

LEAF_OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "contains",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "before",
    "after",
)
# What a leaf without an operator means.
DEFAULT_LEAF_OPERATOR = "equals"
# Bounds that keep one query sane to plan and under the driver's parameter limit.
MAX_DEPTH = 20
MAX_NODES = 500
MAX_VALUES = 5000
MAX_TEXT = 1000

COMPARISONS = ("gt", "gte", "lt", "lte")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Condition:
    attribute: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Compound:
    operator: str  # AND | OR
    conditions: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    condition: Node


Node = Condition | Compound | Not


def parse_segment(definition: object) -> Node:
    """Validate a definition; raises `InvalidSegment` whose `details.path` names the bad node or field."""
    return _Parser().node(definition, path="", depth=1)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0
        self.values = 0

    def node(self, raw: object, path: str, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _invalid(path, f"the segment has more than {MAX_NODES} conditions")
        if depth > MAX_DEPTH:
            raise _invalid(path, f"conditions are nested more than {MAX_DEPTH} levels deep")
        if not isinstance(raw, Mapping):
            raise _invalid(
                path, 'expected an object such as {"attribute": ..., "operator": ..., "value": ...}'
            )
        operator = raw.get("operator")
        if "operator" not in raw and "attribute" in raw and not {"conditions", "condition"} & raw.keys():
            return self._leaf(raw, DEFAULT_LEAF_OPERATOR, path)
        if not isinstance(operator, str):
            problem = "missing operator" if operator is None else f"operator {operator!r} is not text"
            raise _invalid(_key(path, "operator"), f"{problem}; expected one of {_ALL_OPERATORS}")
        word = operator.strip()
        if word.upper() in ("AND", "OR"):
            return self._compound(raw, word.upper(), path, depth)
        if word.upper() == "NOT":
            _only_keys(raw, ("operator", "condition"), path)
            return Not(self.node(raw.get("condition"), _key(path, "condition"), depth + 1))
        if word.lower() in LEAF_OPERATORS:
            return self._leaf(raw, word.lower(), path)
        raise _invalid(
            _key(path, "operator"), f"unknown operator {operator!r}; expected one of {_ALL_OPERATORS}"
        )

    def _compound(self, raw: Mapping[str, Any], operator: str, path: str, depth: int) -> Compound:
        _only_keys(raw, ("operator", "conditions"), path)
        conditions = raw.get("conditions")
        where = _key(path, "conditions")
        if not isinstance(conditions, list):
            raise _invalid(where, f"{operator} needs a list of conditions")
        if operator == "OR" and not conditions:
            raise _invalid(where, "OR needs at least one condition (an empty OR matches nobody)")
        children = tuple(self.node(child, f"{where}[{i}]", depth + 1) for i, child in enumerate(conditions))
        return Compound(operator, children)

    def _leaf(self, raw: Mapping[str, Any], operator: str, path: str) -> Condition:
        _only_keys(raw, ("attribute", "operator", "value"), path)
        attribute = raw.get("attribute")
        if not isinstance(attribute, str) or not attribute.strip():
            raise _invalid(_key(path, "attribute"), "expected the name of a user attribute, such as 'city'")
        _check_text(attribute, _key(path, "attribute"))
        value = self._value(operator, raw, _key(path, "value"))
        return Condition(attribute, operator, value)

    def _value(self, operator: str, raw: Mapping[str, Any], path: str) -> Any:
        value = raw.get("value")
        self.values += len(value) if operator == "in" and isinstance(value, list) else 1
        if self.values > MAX_VALUES:
            raise _invalid(path, f"the segment has more than {MAX_VALUES} values")
        if operator == "exists":
            if "value" in raw and not isinstance(value, bool):
                raise _invalid(path, "exists takes true or false (or no value, meaning true)")
            return value if isinstance(value, bool) else True
        if operator in ("equals", "not_equals"):
            if value is None:
                raise _invalid(path, f"{operator} needs a value; to match a missing attribute use exists")
            return _check_json(value, path)
        if operator == "in":
            if not isinstance(value, list) or not value:
                raise _invalid(path, "in needs a non-empty list of values")
            return [_check_scalar(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if operator == "contains":
            if value == "":
                raise _invalid(path, "contains needs a non-empty value")
            return _check_scalar(value, path)
        if operator in COMPARISONS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(path, f"{operator} compares numbers: expected a number, got {value!r}")
            return _check_number(value, path)
        return _check_date(value, path)  # before / after


_ALL_OPERATORS = "AND, OR, NOT, " + ", ".join(LEAF_OPERATORS)


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _invalid(path: str, problem: str) -> InvalidSegment:
    return InvalidSegment(f"{path or 'segment'}: {problem}", path=path)


def _only_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise _invalid(_key(path, str(key)), f"unexpected key {key!r}; expected {', '.join(allowed)}")


def _check_text(text: str, path: str) -> str:
    if len(text) > MAX_TEXT:
        raise _invalid(path, f"longer than {MAX_TEXT} characters")
    # A value the query could not bind (a NUL, a lone surrogate) is refused here, saying where.
    problem = text_problem(text)
    if problem is not None:
        raise _invalid(path, problem)
    return text


def _check_number(value: float, path: str) -> float:
    problem = number_problem(value)
    if problem is not None:
        raise _invalid(path, problem)
    return value


def _check_scalar(value: object, path: str) -> str | int | float | bool:
    if isinstance(value, str):
        return _check_text(value, path)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _check_number(value, path)
    raise _invalid(path, f"expected a text, number or true/false value, got {value!r}")


def _check_json(value: object, path: str) -> object:
    if isinstance(value, list):
        return [_check_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {_check_text(str(k), path): _check_json(v, _key(path, str(k))) for k, v in value.items()}
    return _check_scalar(value, path)


def _check_date(value: object, path: str) -> str:
    problem = "expected an ISO-8601 date such as '2024-05-31'"
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise _invalid(path, f"{problem}, got {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _invalid(path, f"{problem}; {value!r} is not a calendar date") from None
    return value
