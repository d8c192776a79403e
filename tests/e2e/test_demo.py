"""`make demo` on the whole local stack: the demo script, through the API only, imports users, sends a
campaign to completion and prints its summary; STOP users stay STOP and get nothing."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import Engine, text

from infra.local import demo
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e


def test_demo_runs_a_campaign_to_completion_without_messaging_stop_users(
    local_stack: LocalStack,
    clean_stack: dict[str, str],
    stack_engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = demo.main(["--state-dir", str(local_stack.state_dir), "--users", "40", "--timeout", "120"])

    output = capsys.readouterr().out
    assert status == 0, output
    assert "STOP users re-imported with OPT_IN are still: ['STOP']" in output
    assert '"status": "COMPLETED"' in output
    with stack_engine.connect() as conn:
        stop_states = conn.execute(
            text("SELECT DISTINCT consent_state FROM users WHERE phone_e164 LIKE '+1415399%'")
        )
        assert stop_states.scalars().all() == ["STOP"]
        lima_opted_in = conn.execute(
            text("SELECT count(*) FROM users WHERE consent_state = 'OPT_IN' AND attributes->>'city' = 'Lima'")
        ).scalar_one()
    sent_to = {
        m["to"] for m in requests.get(clean_stack["TWILIO_API_URL"] + "/_emulator/messages", timeout=5).json()
    }
    assert len(sent_to) == lima_opted_in > 0
    assert not any("+1415399" in to for to in sent_to)
