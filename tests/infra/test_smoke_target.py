"""`make smoke` against a deployment: the target comes from terraform's outputs (or flags), secrets from the
environment or Secret Manager, and the forced tick is `gcloud scheduler jobs run` on the job terraform made.
gcloud is replaced by a stub on PATH that records its arguments; nothing here reaches Google."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from infra.deploy import smoke

OUTPUTS = {
    "api_url": {"value": "https://ese-api-123.europe-west1.run.app"},
    "status_webhook_url": {"value": "https://ese-status-webhook-123.europe-west1.run.app"},
    "region": {"value": "europe-west1"},
    "scheduler_job": {"value": "ese-trigger-campaign"},
    "operator_secrets": {
        "value": {"TWILIO_AUTH_TOKEN": "ese-twilio-auth-token", "API_TOKENS": "ese-api-tokens"}
    },
}


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "to": "+447700900123",
        "content_sid": None,
        "wait": 90.0,
        "api_url": None,
        "status_webhook_url": None,
        "region": None,
        "scheduler_job": None,
    }
    return argparse.Namespace(**(values | overrides))


@pytest.fixture
def gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    calls = tmp_path / "calls"
    stub = tmp_path / "gcloud"
    stub.write_text(
        f'#!/usr/bin/env bash\necho "$*" >> {calls}\nif [[ "$1" == secrets ]]; then printf "tok-a,tok-b"; fi\n'
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return calls


def test_a_deployment_target_reads_terraform_outputs_and_the_secrets_from_secret_manager(
    gcloud: Path,
) -> None:
    target = smoke.deployed_target(OUTPUTS, args(), environ={})

    assert target.api_url == "https://ese-api-123.europe-west1.run.app"
    assert target.status_webhook_url == "https://ese-status-webhook-123.europe-west1.run.app"
    # The first of the comma-separated API tokens.
    assert (target.api_token, target.twilio_auth_token) == ("tok-a", "tok-a")
    target.force_tick()
    calls = gcloud.read_text().splitlines()
    assert "secrets versions access latest --secret ese-api-tokens" in calls
    assert "secrets versions access latest --secret ese-twilio-auth-token" in calls
    assert calls[-1] == "scheduler jobs run ese-trigger-campaign --location europe-west1"


def test_secrets_in_the_environment_are_used_without_asking_gcloud(gcloud: Path) -> None:
    target = smoke.deployed_target(
        OUTPUTS, args(), environ={"API_TOKEN": "t" * 43, "TWILIO_AUTH_TOKEN": "a" * 32}
    )

    assert (target.api_token, target.twilio_auth_token) == ("t" * 43, "a" * 32)
    assert not gcloud.exists()


def test_flags_stand_in_for_terraform_outputs(gcloud: Path) -> None:
    flags = args(
        api_url="https://api.example", status_webhook_url="https://st.example", region="r", scheduler_job="j"
    )
    target = smoke.deployed_target({}, flags, environ={"API_TOKEN": "x", "TWILIO_AUTH_TOKEN": "y"})
    assert (target.api_url, target.status_webhook_url) == ("https://api.example", "https://st.example")


def test_a_missing_value_says_which_flag_to_pass() -> None:
    with pytest.raises(SystemExit, match=r"missing region: .* pass --region"):
        smoke.deployed_target({}, args(), environ={"API_TOKEN": "x", "TWILIO_AUTH_TOKEN": "y"})


def test_a_deployment_run_needs_a_test_number_and_a_confirmation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        smoke.main(["--outputs-json", "x.json"], environ={})
    assert "--to is required" in capsys.readouterr().err

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    status = smoke.main(
        ["--outputs-json", str(outputs), "--to", "+447700900123"],
        environ={"API_TOKEN": "x", "TWILIO_AUTH_TOKEN": "y"},
    )
    assert status == 1
    assert "not sent." in capsys.readouterr().out
