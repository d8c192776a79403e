"""Typed domain errors. Each carries a stable `code`, a `message` a person can act on, and `details`
that say where (`{"path": "conditions[1].operator"}`, `{"field": "phone", "value": "..."}`).

Three kinds, which every adapter tells apart (the API by status code, the dashboard by page or form):
- `DomainError` itself and most subclasses: the request is wrong (a bad phone, segment, reference);
- `NotFound`: what the request names does not exist;
- `Conflict`: the request is well formed, but the current state refuses it (a campaign no longer DRAFT, a
  name already taken, a row still in use).

The text is what an operator reads: say what was wrong and what was expected.
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


class NotFound(DomainError):
    code = "not_found"

    def __init__(self, resource: str, key: object) -> None:
        super().__init__(f"{resource} {key} does not exist", resource=resource, key=str(key))


class Conflict(DomainError):
    code = "conflict"


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


class InvalidReference(DomainError):
    """An id in the request names no row (a campaign's template or segment)."""

    code = "invalid_reference"


class InvalidQuietHours(DomainError):
    code = "invalid_quiet_hours"


class InvalidRegion(DomainError):
    code = "invalid_region"


class InvalidCursor(DomainError):
    code = "invalid_cursor"


class NameTaken(Conflict):
    code = "name_taken"


class InUse(Conflict):
    """A row that others still reference cannot be deleted."""

    code = "in_use"


class TemplateInUse(Conflict):
    code = "template_in_use"


class CampaignNotDraft(Conflict):
    code = "campaign_not_draft"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class NotOptedIn(Conflict):
    """A send to one person (a template's test send) whose consent does not allow it."""

    code = "not_opted_in"


class NotSendable(Conflict):
    """A message that may not go to this person now (outside WhatsApp's 24-hour window, no content_sid)."""

    code = "not_sendable"
