"""`make chaos --short` inside `make test`: a SIGKILL of send_message mid-campaign, PostgreSQL down,
STOPs timed at the send instant, and a pool's sender refused by Twilio as send_message is killed, each on a
campaign of its own, on a stack of its own (its own PostgreSQL
cluster, which the outage stops and starts). Every recipient gets exactly one message, none is stuck, and
Twilio accepts nothing after a STOP's acknowledgement; the pool's recipients each hear from one sender and
the refused sender ends paused. The full set is `make chaos`."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.chaos.__main__ import run
from infra.chaos.faults import SHORT_FAULTS
from infra.chaos.report import table

pytestmark = pytest.mark.e2e


def test_the_short_chaos_run_ends_clean(tmp_path: Path) -> None:
    verdicts = run(None, short=True, directory=tmp_path)

    assert [v.fault for v in verdicts] == [
        "kill -9 send_message",
        "PostgreSQL down 10 s",
        "STOP at the send instant",
        "pool: a sender refused (63018) and send_message killed",
    ]
    assert len(verdicts) == len(SHORT_FAULTS)
    for verdict in verdicts:
        assert verdict.clean, table(verdicts)
        assert verdict.sent > 0
    stops = verdicts[2]
    # The STOP race really raced: some recipients stopped before their send, so fewer were sent.
    assert stops.sent < stops.recipients
