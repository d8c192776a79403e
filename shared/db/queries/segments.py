"""The segment DSL (shared.domain.segments) compiled to one parameterized query over `users`, with
consent on top of any definition: only OPT_IN users are an audience.

A leaf never compiles to SQL NULL (a missing attribute is false), so `NOT` stays an exact complement.
Attribute names and values only ever travel as bound parameters; nothing from a definition becomes SQL.
"""

from __future__ import annotations

import operator as op
from decimal import Decimal

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import literal as bound
from sqlalchemy.orm import Session

from shared.db.models import Segment, Subscription, User
from shared.domain.enums import ConsentState
from shared.domain.segments import Compound, Condition, Node, Not, parse_segment

_COMPARISONS = {"gt": op.gt, "gte": op.ge, "lt": op.lt, "lte": op.le}
_ISO_DATE_PREFIX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]|$)"
_DECIMAL_TEXT = r"^\s*-?[0-9]{1,30}(\.[0-9]{1,30})?\s*$"


def segment_condition(definition: object) -> ColumnElement[bool]:
    """The WHERE clause for a definition (already parsed, or raw JSON)."""
    node = definition if isinstance(definition, Condition | Compound | Not) else parse_segment(definition)
    return _compile(node)


def audience_query(
    definition: object, *, topic: str | None = None, after: str | None = None, limit: int | None = None
) -> Select[str]:
    """Phones of the audience in phone order: page with `after` (the last phone seen) and `limit`.

    Keyset paging on the primary key, so each page is an index range scan however deep it is.
    """
    query = select(User.phone_e164).where(*_audience(definition, topic))
    if after is not None:
        query = query.where(User.phone_e164 > after)
    query = query.order_by(User.phone_e164)
    return query if limit is None else query.limit(limit)


def count_query(definition: object, *, topic: str | None = None) -> Select[int]:
    return select(func.count()).select_from(User).where(*_audience(definition, topic))


def _audience(definition: object, topic: str | None) -> list[ColumnElement[bool]]:
    clauses = [User.consent_state == ConsentState.OPT_IN.value, segment_condition(definition)]
    if topic is not None:
        subscribed = exists().where(Subscription.user_phone == User.phone_e164, Subscription.topic == topic)
        clauses.append(subscribed)
    return clauses


def _compile(node: Node) -> ColumnElement[bool]:
    if isinstance(node, Not):
        return not_(_compile(node.condition))
    if isinstance(node, Compound):
        parts = [_compile(child) for child in node.conditions]
        if node.operator == "OR":
            return or_(*parts)
        return and_(*parts) if parts else true()
    return _leaf_sql(node)


def _leaf_sql(leaf: Condition) -> ColumnElement[bool]:
    name, operator, value = leaf.attribute, leaf.operator, leaf.value
    attributes = User.attributes
    element, text = attributes[name], attributes[name].astext
    kind = func.jsonb_typeof(element)
    if operator == "equals":
        return _equals(name, value)
    if operator == "not_equals":
        return not_(_equals(name, value))
    if operator == "in":
        # One containment per value: each can use the GIN index on attributes.
        return or_(*(attributes.contains({name: item}) for item in value))
    if operator == "exists":
        present = and_(attributes.has_key(name), kind != "null")
        return present if value else not_(present)
    if operator == "contains":
        in_list = attributes.contains({name: [value]})
        if not isinstance(value, str):
            return in_list
        in_text = func.strpos(func.lower(text), func.lower(bound(value))) > 0
        return or_(_when(kind == "string", in_text), in_list)
    if operator in _COMPARISONS:
        # CASE, not AND: PostgreSQL does not promise to test the type before trying the cast.
        compare = _COMPARISONS[operator]
        limit = bound(Decimal(str(value)), Numeric)
        decimal_text = and_(kind == "string", text.regexp_match(_DECIMAL_TEXT))
        return case(
            (kind == "number", compare(cast(element, Numeric), limit)),
            (decimal_text, compare(cast(text, Numeric), limit)),
            else_=false(),
        )
    day = func.substr(text, 1, 10)
    compared = day < bound(value) if operator == "before" else day > bound(value)
    return _when(and_(kind == "string", text.regexp_match(_ISO_DATE_PREFIX)), compared)


def _equals(name: str, value: object) -> ColumnElement[bool]:
    # Containment is what the GIN index serves. For a scalar it is exact equality; for a list or object
    # it also matches supersets, so those add an exact comparison.
    contained = User.attributes.contains({name: value})
    if isinstance(value, list | dict):
        return and_(contained, User.attributes[name] == value)
    return contained


def _when(guard: ColumnElement[bool], test: ColumnElement[bool]) -> ColumnElement[bool]:
    """`test` where `guard` holds, false elsewhere (including a missing attribute): never NULL."""
    return case((guard, test), else_=false())


def names_starting_with(session: Session, prefix: str) -> set[str]:
    """Segment names that begin with `prefix` (matched literally: % and _ are not wildcards)."""
    statement = select(Segment.name).where(Segment.name.startswith(prefix, autoescape=True))
    return set(session.scalars(statement))
