from __future__ import annotations

import pytest

from shared.domain.campaign_states import ALLOWED, FINAL, can_transition, sources
from shared.domain.enums import CampaignStatus as C


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (C.DRAFT, C.READY),
        (C.READY, C.RUNNING),
        (C.RUNNING, C.COMPLETED),
        (C.READY, C.PAUSED),
        (C.RUNNING, C.PAUSED),
        (C.PAUSED, C.RUNNING),
        (C.PAUSED, C.READY),
        (C.DRAFT, C.CANCELLED),
        (C.PAUSED, C.CANCELLED),
    ],
)
def test_the_documented_transitions_are_allowed(current: C, target: C) -> None:
    assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(C.DRAFT, C.RUNNING), (C.COMPLETED, C.RUNNING), (C.CANCELLED, C.READY), (C.PAUSED, C.COMPLETED)],
)
def test_skipping_a_state_or_leaving_a_final_one_is_refused(current: C, target: C) -> None:
    assert not can_transition(current, target)


def test_completed_and_cancelled_are_the_only_final_states() -> None:
    assert {C.COMPLETED, C.CANCELLED} == FINAL


def test_cancel_is_reachable_from_every_state_that_is_not_final() -> None:
    assert sources(C.CANCELLED) == set(ALLOWED) - FINAL


def test_only_a_ready_campaign_can_start() -> None:
    assert sources(C.RUNNING) == {C.READY, C.PAUSED}
