from __future__ import annotations

import pytest

from shared.domain.enums import MessageStatus as S
from shared.domain.message_status import (
    FINAL,
    can_advance,
    from_twilio_status,
    predecessors,
    timestamp_columns,
)

CHAIN = [S.QUEUED, S.SENDING, S.AMBIGUOUS, S.ACCEPTED, S.SENT, S.DELIVERED, S.READ]


def test_success_chain_only_moves_forward() -> None:
    for i, earlier in enumerate(CHAIN):
        for later in CHAIN[i + 1 :]:
            assert can_advance(earlier, later), (earlier, later)
            assert not can_advance(later, earlier), (later, earlier)


def test_late_sent_callback_does_not_downgrade_delivered() -> None:
    assert not can_advance(S.DELIVERED, S.SENT)


def test_delivered_after_read_is_ignored() -> None:
    assert not can_advance(S.READ, S.DELIVERED)


def test_repeated_status_is_not_an_advance() -> None:
    for status in S:
        assert not can_advance(status, status)


def test_failed_or_undelivered_after_sent_wins() -> None:
    assert can_advance(S.SENT, S.FAILED)
    assert can_advance(S.SENT, S.UNDELIVERED)
    assert can_advance(S.ACCEPTED, S.UNDELIVERED)


def test_failure_reported_after_delivery_cannot_undo_it() -> None:
    for confirmed in (S.DELIVERED, S.READ):
        assert not can_advance(confirmed, S.FAILED)
        assert not can_advance(confirmed, S.UNDELIVERED)


@pytest.mark.parametrize("final", sorted(FINAL))
def test_final_states_never_change(final: S) -> None:
    assert not any(can_advance(final, other) for other in S)


def test_any_callback_reconciles_an_ambiguous_or_sending_message() -> None:
    for report in (S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.FAILED, S.UNDELIVERED):
        assert can_advance(S.AMBIGUOUS, report)
        assert can_advance(S.SENDING, report)


def test_withheld_and_skipped_only_before_twilio_may_have_the_message() -> None:
    for decided_by_us in (S.WITHHELD, S.SKIPPED):
        assert can_advance(S.QUEUED, decided_by_us)
        assert can_advance(S.SENDING, decided_by_us)
        assert not can_advance(S.AMBIGUOUS, decided_by_us)
        assert not can_advance(S.SENT, decided_by_us)


def test_predecessors_agree_with_can_advance() -> None:
    assert predecessors(S.DELIVERED) == {S.QUEUED, S.SENDING, S.AMBIGUOUS, S.ACCEPTED, S.SENT}
    assert predecessors(S.FAILED) == {S.QUEUED, S.SENDING, S.AMBIGUOUS, S.ACCEPTED, S.SENT}
    assert predecessors(S.QUEUED) == frozenset()
    for new in S:
        assert predecessors(new) == {cur for cur in S if can_advance(cur, new)}


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("queued", S.ACCEPTED),
        ("accepted", S.ACCEPTED),
        ("scheduled", S.ACCEPTED),
        ("sending", S.ACCEPTED),
        ("sent", S.SENT),
        ("delivered", S.DELIVERED),
        ("read", S.READ),
        ("failed", S.FAILED),
        ("undelivered", S.UNDELIVERED),
        ("canceled", S.FAILED),
        ("partially_delivered", S.SENT),
        (" Delivered ", S.DELIVERED),
    ],
)
def test_twilio_statuses_map_to_ours(twilio: str, ours: S) -> None:
    assert from_twilio_status(twilio) == ours


@pytest.mark.parametrize("value", [None, "", "received", "receiving", "exploded"])
def test_unknown_or_inbound_twilio_status_maps_to_nothing(value: str | None) -> None:
    assert from_twilio_status(value) is None


def test_timestamps_each_status_proves() -> None:
    assert timestamp_columns(S.SENT) == ("sent_at",)
    assert timestamp_columns(S.READ) == ("read_at", "delivered_at", "sent_at")
    assert timestamp_columns(S.UNDELIVERED) == ("failed_at",)
    assert timestamp_columns(S.QUEUED) == ()
