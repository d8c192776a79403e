"""Message templates: `{placeholder}` variables filled from a recipient's attributes (and `phone`).

Syntax:
- `{first_name}`: a variable. Names are letters, digits and `_`, not starting with a digit.
- `{first_name|there}`: with a fallback, used when the value is missing. Everything after the first `|`
  up to `}` is the fallback, verbatim (spaces included, braces excluded); `{nickname|}` means "optional".
- `{{` and `}}`: literal braces.

Values that are not text are written as JSON (`42`, `true`, `["a", "b"]`).

A value is missing when the key is absent, null, or blank text. A missing variable without a fallback
raises `MissingVariables` naming every such variable, so a half-rendered message ("Hi , your order") can
never be sent by accident; the fan-out records it as the reason for skipping that recipient.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from shared.domain.errors import InvalidTemplate, MissingVariables

# The templates.content CHECK: refusing here turns an integrity error into a 400 that says why.
MAX_TEMPLATE_LENGTH = 4096
# The longest Body Twilio accepts on any Programmable Messaging channel, WhatsApp included; a longer one is
# refused with error 21617 ("Maximum Message Length with Twilio Programmable Messaging",
# https://support.twilio.com/hc/en-us/articles/360033806753, and https://www.twilio.com/docs/api/errors/21617).
# Counted here in characters (code points); Twilio may count some emoji as more than one, so a body close
# to the limit can still be refused.
WHATSAPP_BODY_LIMIT = 1600

# A BCP-47-like language tag: a 2-3 letter language, an optional 4-letter script, an optional region (two
# letters or three digits): es, es-PE, pt-BR, zh-Hant-TW, es-419. The templates.locale CHECK is the same.
LOCALE_PATTERN = re.compile(r"([a-z]{2,3})(-[A-Z][a-z]{3})?(-(?:[A-Z]{2}|[0-9]{3}))?")
LOCALE_SQL_PATTERN = "^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"


class Channel(StrEnum):
    """Where a template is sent. Only WhatsApp: the send path (shared/adapters/twilio_send.py) addresses
    every message as `whatsapp:+...` from the WhatsApp sender, so a template marked `sms` would be stored
    and then sent over WhatsApp anyway; the value is refused rather than silently ignored."""

    WHATSAPP = "whatsapp"


class TemplateSendOutcome(StrEnum):
    """What became of one test send: Twilio accepted it, refused it, or did not answer (it may have
    been accepted: look for it in Twilio's log before sending again)."""

    ACCEPTED = "ACCEPTED"
    FAILED = "FAILED"
    AMBIGUOUS = "AMBIGUOUS"


NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Placeholder:
    name: str
    fallback: str | None


Part = str | Placeholder


def validate_template(content: str) -> None:
    """Raise `InvalidTemplate` (with the position) for an empty or oversized template or bad braces."""
    if not content.strip():
        raise InvalidTemplate("template content is empty", field="content")
    if len(content) > MAX_TEMPLATE_LENGTH:
        raise InvalidTemplate(
            f"template content is {len(content)} characters; the limit is {MAX_TEMPLATE_LENGTH}",
            field="content",
        )
    _parse(content)


def template_variables(content: str) -> list[str]:
    """Variable names in order of first appearance, each once."""
    return list(dict.fromkeys(part.name for part in _parse(content) if isinstance(part, Placeholder)))


def recipient_variables(phone_e164: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees for one recipient: its attributes, plus `phone`, which is always its own."""
    return {**attributes, "phone": phone_e164}


def render(content: str, variables: Mapping[str, Any]) -> str:
    """The text for one recipient; raises `MissingVariables` or `InvalidTemplate`."""
    pieces: list[str] = []
    missing: list[str] = []
    for part in _parse(content):
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = _value(variables, part)
        if value is None:
            missing.append(part.name)
        else:
            pieces.append(value)
    if missing:
        raise MissingVariables(list(dict.fromkeys(missing)))
    return "".join(pieces)


@dataclass(frozen=True)
class Preview:
    """A template rendered for one set of variables, leniently: a missing variable is left as its
    `{placeholder}` and named in `missing`, instead of refusing as `render` does."""

    text: str
    missing: list[str]
    # Variables whose value was missing and whose `{name|fallback}` default was used.
    defaulted: list[str]
    length: int
    limit: int = WHATSAPP_BODY_LIMIT

    @property
    def over_limit(self) -> bool:
        return self.length > self.limit

    @property
    def error(self) -> str | None:
        if not self.over_limit:
            return None
        return (
            f"the rendered text is {self.length} characters; WhatsApp messages through Twilio are "
            f"limited to {self.limit} (Twilio error 21617)"
        )


def preview(content: str, variables: Mapping[str, Any]) -> Preview:
    """What `render` would send for these variables, and what it lacks; raises `InvalidTemplate`."""
    pieces: list[str] = []
    missing: list[str] = []
    defaulted: list[str] = []
    for part in _parse(content):
        if isinstance(part, str):
            pieces.append(part)
            continue
        raw = _value(variables, Placeholder(part.name, None))
        if raw is not None:
            pieces.append(raw)
        elif part.fallback is not None:
            pieces.append(part.fallback)
            defaulted.append(part.name)
        else:
            pieces.append("{" + part.name + "}")
            missing.append(part.name)
    text = "".join(pieces)
    return Preview(
        text=text,
        missing=list(dict.fromkeys(missing)),
        defaulted=list(dict.fromkeys(defaulted)),
        length=len(text),
    )


def normalize_locale(value: str) -> str:
    """A locale tag in its usual case (`es-pe` -> `es-PE`, `zh-hant-tw` -> `zh-Hant-TW`); raises
    `InvalidTemplate` naming the field for anything that is not a language[-Script][-REGION] tag."""
    language, *subtags = value.strip().replace("_", "-").split("-")
    # The language in lower case, a script (four letters) in title case, a region in upper case.
    cased = [language.lower(), *(tag.title() if len(tag) == 4 else tag.upper() for tag in subtags)]
    tag = "-".join(cased)
    if not LOCALE_PATTERN.fullmatch(tag):
        raise InvalidTemplate(
            f"locale {value!r} is not a language tag such as 'es', 'es-PE' or 'pt-BR' "
            "(language, optional script, optional region)",
            field="locale",
            value=value,
        )
    return tag


def validate_content_variables(mapping: Mapping[str, Any]) -> None:
    """A ContentVariables mapping is {"1": "first_name", "2": "city|your city"}: what goes inside braces."""
    for key, spec in mapping.items():
        _content_placeholder(key, spec)


def render_content_variables(mapping: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, str]:
    """{"1": "first_name"} -> {"1": "Ana"}, with the same fallback and missing rules as `render`."""
    rendered: dict[str, str] = {}
    missing: list[str] = []
    for key, spec in mapping.items():
        placeholder = _content_placeholder(key, spec)
        value = _value(variables, placeholder)
        if value is None:
            missing.append(placeholder.name)
        else:
            rendered[key] = value
    if missing:
        raise MissingVariables(list(dict.fromkeys(missing)))
    return rendered


def _value(variables: Mapping[str, Any], placeholder: Placeholder) -> str | None:
    raw = variables.get(placeholder.name)
    text = raw if isinstance(raw, str) else None if raw is None else json.dumps(raw, ensure_ascii=False)
    if text is None or not text.strip():
        return placeholder.fallback
    return text


@lru_cache(maxsize=256)
def _parse(content: str) -> tuple[Part, ...]:
    # Cached: a campaign renders the same template for every recipient.
    parts: list[Part] = []
    position = 0
    for match in _TOKEN.finditer(content):
        if match.start() > position:
            parts.append(content[position : match.start()])
        lexeme = match.group(0)
        if lexeme in ("{{", "}}"):
            parts.append(lexeme[0])
        elif lexeme == "{":
            raise _brace_error(content, match.start(), "'{' is never closed")
        elif lexeme == "}":
            raise _brace_error(content, match.start(), "'}' has no matching '{'")
        else:
            parts.append(_parse_placeholder(match.group(1), field="content", position=match.start()))
        position = match.end()
    if position < len(content):
        parts.append(content[position:])
    return tuple(parts)


def _content_placeholder(key: str, spec: Any) -> Placeholder:
    field = f"content_variables.{key}"
    if not isinstance(spec, str):
        raise InvalidTemplate(
            f"content variable {key!r} must be a variable name such as 'first_name', not {spec!r}",
            field=field,
        )
    # Braces are optional here ("{first_name}" reads the same as "first_name").
    inner = spec[1:-1] if len(spec) >= 2 and spec[0] == "{" and spec[-1] == "}" else spec
    return _parse_placeholder(inner, field=field, position=None)


def _parse_placeholder(spec: str, field: str, position: int | None) -> Placeholder:
    name, bar, fallback = spec.partition("|")
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        where = "" if position is None else f" at position {position}"
        raise InvalidTemplate(
            f"bad variable name {name!r}{where}: use letters, digits and _, "
            "not starting with a digit (e.g. {first_name} or {first_name|there})",
            field=field,
            **({} if position is None else {"position": position}),
        )
    return Placeholder(name=name, fallback=fallback if bar else None)


def _brace_error(content: str, position: int, problem: str) -> InvalidTemplate:
    near = content[max(0, position - 10) : position + 10]
    return InvalidTemplate(
        f"{problem} at position {position} (near {near!r}); write '{{{{' or '}}}}' for a literal brace",
        field="content",
        position=position,
    )
