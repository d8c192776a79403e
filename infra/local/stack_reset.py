"""Bring a running local stack back to "just started": no queued tasks, no pending pushes, no rows, no
Twilio messages, faults or changed emulator settings. End-to-end tests reset between tests, the bench
between figures."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pg8000.native
import requests

from infra.local.emulator_clients import cloud_tasks, subscriber
from infra.local.postgres import connect
from infra.local.pubsub_emulator import push_subscription
from infra.local.twilio_emulator.config import EmulatorConfig
from shared.adapters.tasks import send_queue_names


def reset_stack(env: Mapping[str, str], twilio_config: Mapping[str, Any] | None = None) -> None:
    """`twilio_config`: the emulator settings to restore (default: its defaults, inbound URL kept)."""
    project, region = env["GCP_PROJECT"], env["GCP_REGION"]
    # Stop the producers of new work first, then empty what they write to.
    tasks = cloud_tasks(env["CLOUD_TASKS_EMULATOR_HOST"])
    for name in send_queue_names(env["TASKS_QUEUE"], int(env.get("TASKS_QUEUE_COUNT", "1"))):
        tasks.purge_queue(name=tasks.queue_path(project, region, name))
    tasks.transport.close()  # type: ignore[no-untyped-call]
    pubsub = subscriber(env["PUBSUB_EMULATOR_HOST"])
    # Seeking to now acknowledges every message published before it, pending redeliveries included.
    pubsub.seek(
        request={
            "subscription": pubsub.subscription_path(project, push_subscription(env["PUBSUB_TOPIC"])),
            "time": datetime.now(UTC),
        }
    )
    pubsub.close()
    _truncate_all_tables(env["DATABASE_URL"])
    twilio = env["TWILIO_API_URL"]
    requests.delete(twilio + "/_emulator/messages", timeout=10).raise_for_status()
    if twilio_config is None:
        twilio_config = {k: v for k, v in EmulatorConfig().as_json().items() if k != "inbound_url"}
    requests.post(twilio + "/_emulator/config", json=dict(twilio_config), timeout=10).raise_for_status()


# TRUNCATE locks its tables one after another. A write still landing from before the reset (a status
# callback Twilio's emulator sends late, a scheduler tick's fold) can lock two of them the other way round,
# and PostgreSQL then aborts one side of the deadlock: when that is the TRUNCATE, the reset tries again
# once the write has ended (https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-DEADLOCKS).
DEADLOCK_DETECTED = "40P01"
TRUNCATE_ATTEMPTS = 5


def _truncate_all_tables(database_url: str) -> None:
    conn = connect(database_url)
    try:
        names = ", ".join(f'"{table}"' for table in truncated_tables(conn))
        # Ids keep counting: a task of an earlier test or figure still on its way must never find a new
        # message under its old id.
        if names:
            _truncate(conn, names)
    finally:
        conn.close()


def truncated_tables(conn: pg8000.native.Connection) -> list[str]:
    """Every table of the schema but Alembic's, in the order the reset's TRUNCATE names (and locks) them."""
    rows = conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return [str(row[0]) for row in rows if row[0] != "alembic_version"]


def _truncate(conn: pg8000.native.Connection, names: str) -> None:
    for attempt in range(1, TRUNCATE_ATTEMPTS + 1):
        try:
            conn.run(f"TRUNCATE {names} CASCADE")
            return
        except pg8000.native.DatabaseError as error:
            fields = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
            if fields.get("C") != DEADLOCK_DETECTED or attempt == TRUNCATE_ATTEMPTS:
                raise
            time.sleep(0.1 * attempt)
