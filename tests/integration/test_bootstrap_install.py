"""An installed runtime is what the entry points use: its settings, clock, engine and publisher, not the
process's own (shared/bootstrap.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Request
from sqlalchemy import Engine, text
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from shared import bootstrap
from shared.bootstrap import Runtime
from shared.clock import FixedClock
from shared.entrypoints.api import api
from tests.conftest import API_TOKEN, make_settings
from tests.integration.pipeline_support import RecordingPublisher
from tests.seeding import add_campaign, add_users

AT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_the_api_entry_point_uses_the_installed_runtime(database_url: str, engine: Engine) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine)
    publisher = RecordingPublisher()
    # The process's own settings are left as they are: the installed runtime's name this database, carry
    # the API token and page by two.
    installed = make_settings(database_url, fanout_page_size=2)
    bootstrap.install(Runtime(settings=installed, clock=FixedClock(AT), engine=engine, publisher=publisher))
    try:
        request = Request(
            EnvironBuilder(
                method="POST",
                path=f"/v1/campaigns/{campaign_id}/trigger",
                headers=Headers({"Authorization": f"Bearer {API_TOKEN}"}),
            ).get_environ()
        )
        response = api(request)
    finally:
        bootstrap.reset()

    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(publisher.payloads) == 2  # three recipients in pages of the installed settings' two
    with engine.connect() as conn:
        started_at = conn.execute(text("SELECT started_at FROM campaigns")).scalar_one()
    assert started_at == AT
