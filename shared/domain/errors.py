"""Typed domain errors. Each carries a stable `code`, a `message` a person can act on, and `details`
that say where (`{"path": "conditions[1].operator"}`, `{"field": "phone", "value": "..."}`).

The API maps every `DomainError` to 400 `{"error": {"code", "message", "details"}}`, so the text here is
what an operator reads: say what was wrong and what was expected.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "invalid_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidPhone(DomainError):
    code = "invalid_phone"


class InvalidSegment(DomainError):
    code = "invalid_segment"


class InvalidTemplate(DomainError):
    code = "invalid_template"


class MissingVariables(DomainError):
    """A template was rendered for a recipient lacking values for placeholders without a fallback."""

    code = "missing_variables"

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"missing template variable(s): {', '.join(names)}", missing=names)
        self.names = names


class InvalidTimezone(DomainError):
    code = "invalid_timezone"
