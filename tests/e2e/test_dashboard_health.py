"""The overview's health panel in a real browser on the whole local stack: the send queue paused through
the Cloud Tasks emulator's API (as `gcloud tasks queues pause` does in production) turns its check
failing, read through the api function's real Cloud Tasks client (docs/architecture.md, "Health checks")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud import tasks_v2
from playwright.sync_api import Page, expect

from infra.local.emulator_clients import cloud_tasks
from tests.e2e.browser import browser, context, page, shot, sign_in

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def send_queue(clean_stack: dict[str, str]) -> Iterator[tuple[tasks_v2.CloudTasksClient, str]]:
    client = cloud_tasks(clean_stack["CLOUD_TASKS_EMULATOR_HOST"])
    name = client.queue_path(
        clean_stack["GCP_PROJECT"], clean_stack["GCP_REGION"], clean_stack["TASKS_QUEUE"]
    )
    yield client, name
    client.resume_queue(name=name)  # the stack's later tests send through it


def test_a_paused_send_queue_shows_failing_on_the_overview(
    page: Page, clean_stack: dict[str, str], send_queue: tuple[tasks_v2.CloudTasksClient, str]
) -> None:
    client, name = send_queue
    sign_in(page, clean_stack)
    queue_row = page.locator('#health-checks tr[data-check="send queue"]')
    expect(queue_row).to_have_attribute("data-level", "ok")
    expect(queue_row.locator(".level")).to_have_text("ok")

    assert client.pause_queue(name=name).state == tasks_v2.Queue.State.PAUSED
    page.reload()

    expect(queue_row).to_have_attribute("data-level", "failing")
    expect(queue_row.locator(".level")).to_have_text("failing")
    expect(queue_row).to_contain_text("PAUSED, 0 tasks")
    expect(queue_row).to_contain_text("failing when paused, disabled or unreadable")
    expect(page.locator("#health-status")).to_have_text("failing")
    # The level is told apart by more than its word: the failing badge has its own colour.
    failing = queue_row.locator(".level").evaluate("e => getComputedStyle(e).backgroundColor")
    ok = page.locator('#health-checks tr[data-check="database"] .level').evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert failing != ok
    shot(page, "health-panel-failing")
