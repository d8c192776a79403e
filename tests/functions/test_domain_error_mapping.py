"""How each adapter answers the services' domain errors: the API with its JSON error shape and the status
of the error's kind (missing 404, refused by state 409, invalid 400); the dashboard with the same status
as an error page, as the message under the form field the error names, or as a lifecycle button's error."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from shared.domain.errors import (
    DomainError,
    InvalidCursor,
    InvalidTemplate,
    InvalidTransition,
    NameTaken,
    NotFound,
    TemplateInUse,
)
from shared.services import campaigns, templates
from tests.functions.api_client import ApiClient, api, error_of
from tests.functions.dashboard_client import DashboardClient, operator, visitor

__all__ = ["api", "operator", "visitor"]

ERRORS: list[tuple[DomainError, int]] = [
    (NotFound("template", 7), 404),
    (TemplateInUse("a ready, running or paused campaign uses this template"), 409),
    (NameTaken("a template named 'x' already exists", field="name", value="x"), 409),
    (InvalidTemplate("content: unclosed '{' at 3", field="content", position=3), 400),
    (InvalidCursor("cursor is not one this API issued; pass next_cursor unchanged", field="cursor"), 400),
]
IDS = [type(error).__name__ for error, _ in ERRORS]


def _raise(error: DomainError) -> object:
    def service(*args: object, **kwargs: object) -> object:
        raise error

    return service


@pytest.mark.parametrize(("error", "status"), ERRORS, ids=IDS)
def test_the_api_answers_a_domain_error_with_its_kinds_status_and_the_error_as_it_is(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch, error: DomainError, status: int
) -> None:
    monkeypatch.setattr(templates, "get_template", _raise(error))

    response = api.get("/v1/templates/7")

    assert response.status_code == status
    assert error_of(response) == {"code": error.code, "message": error.message, "details": error.details}


@pytest.mark.parametrize(("error", "status"), ERRORS, ids=IDS)
def test_the_dashboard_shows_a_domain_error_on_a_page_with_the_apis_status(
    operator: DashboardClient, monkeypatch: pytest.MonkeyPatch, error: DomainError, status: int
) -> None:
    monkeypatch.setattr(templates, "get_template", _raise(error))

    response = operator.get("/ui/templates?edit=7")

    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert f"<h1>{status}</h1>" in html and error.message.replace("'", "&#39;") in html


def test_a_form_shows_a_domain_error_under_the_field_it_names(
    operator: DashboardClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(templates, "create_template", _raise(NameTaken("that name is taken", field="name")))

    response = operator.post_form(
        "/ui/templates", {"name": "greeting", "content": "Hi"}, form_page="/ui/templates"
    )

    assert response.status_code == 400
    assert 'id="name-error">that name is taken<' in response.get_data(as_text=True)


def test_a_form_shows_a_domain_error_naming_no_field_above_the_form(
    operator: DashboardClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(templates, "change_template", _raise(NotFound("template", 7)))

    response = operator.post_form(
        "/ui/templates?edit=7", {"name": "greeting", "content": "Hi"}, form_page="/ui/templates"
    )

    assert response.status_code == 400
    assert '<ul class="form-errors" role="alert"><li>template 7 does not exist</li>' in response.get_data(
        as_text=True
    )


def _draft_campaign(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "WITH t AS (INSERT INTO templates (name, content) VALUES ('t', 'Hi') RETURNING id),"
                    " s AS (INSERT INTO segments (name, definition) VALUES ('s', '{}'::jsonb) RETURNING id)"
                    " INSERT INTO campaigns (name, template_id, segment_id)"
                    " SELECT 'c', t.id, s.id FROM t, s RETURNING id"
                )
            ).scalar_one()
        )


def test_a_refused_button_shows_the_conflict_on_the_campaign_page(
    operator: DashboardClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = _draft_campaign(engine)
    refusal = InvalidTransition("cannot pause a campaign that is DRAFT", status="DRAFT", action="pause")
    monkeypatch.setattr(campaigns, "pause_campaign", _raise(refusal))
    detail = f"/ui/campaigns/{campaign_id}"

    response = operator.post_form(f"{detail}/pause", {}, form_page=detail)

    assert response.status_code == 409
    assert '<p class="form-errors" role="alert">cannot pause a campaign that is DRAFT</p>' in (
        response.get_data(as_text=True)
    )


def test_a_button_for_a_campaign_that_is_gone_is_the_404_page(
    operator: DashboardClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = _draft_campaign(engine)
    monkeypatch.setattr(campaigns, "cancel_campaign", _raise(NotFound("campaign", campaign_id)))
    detail = f"/ui/campaigns/{campaign_id}"

    response = operator.post_form(f"{detail}/cancel", {}, form_page=detail)

    assert response.status_code == 404
    assert f"campaign {campaign_id} does not exist" in response.get_data(as_text=True)
