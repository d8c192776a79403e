"""GET /v1/monitoring/health through the `api` function on real PostgreSQL: every check says its level,
what it measured and the threshold; a stopped scheduler is visible, and failing answers 503."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from tests.functions.api_client import ApiClient, api

__all__ = ["api"]


def _tick(engine: Engine, ago: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO heartbeats (name, at, detail) VALUES ('scheduler_tick', :at, '{\"started\": 2}')"
            ),
            {"at": datetime.now(UTC) - ago},
        )


def _checks(body: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in body["checks"]}  # type: ignore[attr-defined, index]


def test_a_scheduler_that_never_ticked_is_failing_and_the_answer_is_503(api: ApiClient) -> None:
    response = api.get("/v1/monitoring/health")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "failing"
    checks = _checks(body)
    assert checks["scheduler"]["level"] == "failing"
    assert checks["scheduler"]["value"] == "no tick recorded yet"
    assert "failing after 10 min" in str(checks["scheduler"]["threshold"])
    assert checks["database"]["level"] == "ok"


@pytest.mark.parametrize(
    ("ago", "level", "status"), [(30, "ok", 200), (300, "warning", 200), (900, "failing", 503)]
)
def test_the_scheduler_check_follows_the_last_tick(
    api: ApiClient, engine: Engine, ago: int, level: str, status: int
) -> None:
    _tick(engine, timedelta(seconds=ago))

    response = api.get("/v1/monitoring/health")

    assert response.status_code == status
    scheduler = _checks(response.get_json())["scheduler"]
    assert scheduler["level"] == level
    assert scheduler["detail"] == "started: 2"
    assert scheduler["at"] is not None


def test_health_needs_the_api_token(api: ApiClient) -> None:
    assert api.get("/v1/monitoring/health", headers={"Authorization": "Bearer nope"}).status_code == 401
