"""The replaced system's route names, where ours differ, served by our routes (README, "The operator
API and its reference"): each is documented in the OpenAPI document as deprecated, naming its canonical
route, and answers exactly as that route does (the same handler, models and authentication)."""

from __future__ import annotations

from shared.api.registry import alias

# The modules whose routes are aliased, registered first whoever imports this one.
from shared.api.routes import messages, reports, user_import  # noqa: F401

# The replaced system's path -> ours.
ALIASES = {
    "POST /v1/users/bulk": "POST /v1/users/import",
    "GET /v1/reporting/campaigns/{campaign_id}/summary": "GET /v1/campaigns/{campaign_id}/summary",
    "GET /v1/reporting/messages/status": "GET /v1/messages/status-counts",
}

for _endpoint, _canonical in ALIASES.items():
    _method, _path = _endpoint.split(" ", 1)
    alias(_method, _path, canonical=_canonical)
