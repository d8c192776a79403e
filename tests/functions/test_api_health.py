"""GET /v1/monitoring/health through the `api` function on real PostgreSQL: every check says its level,
what it measured and the threshold; a stopped scheduler is visible as failing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from shared.config import Settings, override_settings
from shared.services.health import Level, database_check
from tests.functions.api_client import ApiClient, api

__all__ = ["api"]


@pytest.fixture(autouse=True)
def patient_database_check(settings: Settings) -> None:
    # A round trip on two loaded cores can take over 100 ms: the level a latency gets is tested below,
    # without a clock, and these tests only need the database check out of the way.
    override_settings(settings.model_copy(update={"health_db_warning_ms": 60_000.0}))


@pytest.mark.parametrize(("latency_ms", "level"), [(99.9, Level.OK), (100.0, Level.WARNING)])
def test_the_database_check_warns_from_its_threshold(latency_ms: float, level: Level) -> None:
    check = database_check(latency_ms, warning_after_ms=100.0)
    assert check.level is level
    assert check.threshold == "warning at 100 ms; failing when unreachable"


def _tick(engine: Engine, ago: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO heartbeats (name, at, detail) VALUES ('scheduler_tick', :at, '{\"started\": 2}')"
            ),
            {"at": datetime.now(UTC) - ago},
        )


def _checks(body: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = body["checks"]
    assert isinstance(checks, list)
    return {c["name"]: c for c in checks}


def test_a_scheduler_that_never_ticked_is_failing(api: ApiClient) -> None:
    response = api.get("/v1/monitoring/health")

    assert response.status_code == 200  # the report is the answer; `status` says failing
    body = response.get_json()
    assert body["status"] == "failing"
    checks = _checks(body)
    assert checks["scheduler"]["level"] == "failing"
    assert checks["scheduler"]["value"] == "no tick recorded yet"
    assert "failing after 10 min" in str(checks["scheduler"]["threshold"])
    assert checks["database"]["level"] == "ok"


@pytest.mark.parametrize(("ago", "level"), [(30, "ok"), (300, "warning"), (900, "failing")])
def test_the_scheduler_check_follows_the_last_tick(
    api: ApiClient, engine: Engine, ago: int, level: str
) -> None:
    _tick(engine, timedelta(seconds=ago))

    response = api.get("/v1/monitoring/health")

    assert response.status_code == 200
    assert response.get_json()["status"] == level
    scheduler = _checks(response.get_json())["scheduler"]
    assert scheduler["level"] == level
    assert scheduler["detail"] == "started: 2"
    assert scheduler["at"] is not None


def test_health_needs_the_api_token(api: ApiClient) -> None:
    assert api.get("/v1/monitoring/health", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_repairs_and_reconciliation_of_the_last_hour_are_counted_and_warn(
    api: ApiClient, engine: Engine
) -> None:
    _tick(engine, timedelta(seconds=10))
    with engine.begin() as conn:
        for kind in (
            "repair.task_recreated",
            "repair.task_recreated",
            "reconcile.found",
            "reconcile.conflict",
        ):
            conn.execute(text("INSERT INTO audit_events (kind, source) VALUES (:k, 'sweeper')"), {"k": kind})
        # One from long ago does not count.
        conn.execute(
            text(
                "INSERT INTO audit_events (kind, source, occurred_at) VALUES ('repair.page_republished', 'sweeper', :at)"
            ),
            {"at": datetime.now(UTC) - timedelta(hours=2)},
        )

    checks = _checks(api.get("/v1/monitoring/health").get_json())

    assert checks["repairs"]["level"] == "warning"
    assert checks["repairs"]["value"] == "last hour: 0 senders gone, 2 tasks re-created, 0 pages republished"
    assert checks["reconciliation"]["level"] == "warning"  # a conflict needs an operator
    assert "1 found at Twilio" in str(checks["reconciliation"]["value"])


def test_with_nothing_repaired_both_checks_are_ok(api: ApiClient, engine: Engine) -> None:
    _tick(engine, timedelta(seconds=10))

    response = api.get("/v1/monitoring/health")

    assert response.status_code == 200
    checks = _checks(response.get_json())
    assert (checks["repairs"]["level"], checks["reconciliation"]["level"]) == ("ok", "ok")
    assert response.get_json()["status"] == "ok"
