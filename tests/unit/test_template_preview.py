"""The domain's lenient render for previews, and locale tags."""

from __future__ import annotations

import pytest

from shared.domain.errors import InvalidTemplate
from shared.domain.templates import WHATSAPP_BODY_LIMIT, normalize_locale, preview, render


def test_preview_names_missing_and_defaulted_and_agrees_with_render() -> None:
    content = "Hi {first_name|there}, {city}{{ok}} {nick|}"
    shown = preview(content, {"city": "Lima", "first_name": "  "})
    assert shown.text == "Hi there, Lima{ok} "
    assert (shown.missing, shown.defaulted) == ([], ["first_name", "nick"])
    assert shown.text == render(content, {"city": "Lima"})
    gap = preview(content, {})
    assert (gap.text, gap.missing) == ("Hi there, {city}{ok} ", ["city"])


def test_preview_length_against_the_whatsapp_limit() -> None:
    at_limit = preview("{x}", {"x": "a" * WHATSAPP_BODY_LIMIT})
    assert (at_limit.length, at_limit.over_limit, at_limit.error) == (1600, False, None)
    over = preview("{x}!", {"x": "a" * WHATSAPP_BODY_LIMIT})
    assert over.over_limit and over.error is not None and "1601" in over.error


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("es", "es"),
        ("es-pe", "es-PE"),
        ("pt_BR", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
    ],
)
def test_locale_tags_are_put_in_their_usual_case(raw: str, tag: str) -> None:
    assert normalize_locale(raw) == tag


@pytest.mark.parametrize("raw", ["", "e", "spanish", "es-", "es--PE", "es-PE-x", "12"])
def test_anything_else_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidTemplate) as refused:
        normalize_locale(raw)
    assert refused.value.details["field"] == "locale"
