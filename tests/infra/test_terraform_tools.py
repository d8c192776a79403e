"""The terraform passes terraform's own checks and checkov, and its validations refuse what they should.

Providers cannot be downloaded here, so `terraform validate` and a full plan are out of reach. The
variable validations need no provider, though: planning variables.tf on its own runs every one of them
in real terraform, so the connection-budget rule is proven by terraform itself, not re-implemented.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.tasks import send_queue_names
from tests.infra.terraform_config import (
    REQUIRED_VARS,
    ROOT,
    TERRAFORM,
    TERRAFORM_DIR,
    infra_venv,
    send_queue_locals,
)

needs_terraform = pytest.mark.skipif(
    TERRAFORM is None,
    reason="terraform binary not installed (CI and the dev machine have /usr/local/bin/terraform)",
)
INFRA_VENV = ROOT / ".venv-infra"


def terraform_env(tmp_path: Path) -> dict[str, str]:
    # No CLI config, no plugin cache, state and data in the test's own directory.
    return {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": os.devnull,
        "TF_DATA_DIR": str(tmp_path),
    }


@needs_terraform
def test_terraform_files_are_formatted(tmp_path: Path) -> None:
    assert TERRAFORM is not None
    result = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env=terraform_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- variable validations, evaluated by terraform ---


def plan_variables(tmp_path: Path, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`terraform plan` of variables.tf alone, with `values` as a tfvars file."""
    workdir = tmp_path / "variables-only"
    workdir.mkdir(parents=True)
    shutil.copy(TERRAFORM_DIR / "variables.tf", workdir)
    (workdir / "test.tfvars.json").write_text(json.dumps(values))
    assert TERRAFORM is not None
    return subprocess.run(
        [TERRAFORM, "plan", "-input=false", "-no-color", "-lock=false", "-var-file=test.tfvars.json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=terraform_env(tmp_path),
    )


def default_functions() -> dict[str, dict[str, Any]]:
    from tests.infra.terraform_config import load_terraform

    return {ep: dict(sizing) for ep, sizing in load_terraform().default("functions").items()}


@needs_terraform
def test_defaults_fit_the_connection_budget(tmp_path: Path) -> None:
    result = plan_variables(tmp_path, REQUIRED_VARS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_terraform
def test_example_tfvars_pass_every_validation(tmp_path: Path) -> None:
    workdir = tmp_path / "example"
    workdir.mkdir()
    shutil.copy(TERRAFORM_DIR / "variables.tf", workdir)
    shutil.copy(TERRAFORM_DIR / "terraform.tfvars.example", workdir / "terraform.tfvars")
    assert TERRAFORM is not None
    result = subprocess.run(
        [TERRAFORM, "plan", "-input=false", "-no-color", "-lock=false"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=terraform_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def sender(number: int, rate: int, pool: str = "main") -> dict[str, Any]:
    return {"address": f"whatsapp:+1555{number:07d}", "rate_limit_per_second": rate, "pool": pool}


def more_send_message_instances() -> dict[str, dict[str, Any]]:
    functions = default_functions()
    functions["send_message"]["max_instances"] = 30
    return functions


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    # 20 instances x (4 + 2) = 120 connections, but only 100 - 20 are left for the functions.
    "pools_that_would_exhaust_max_connections": ({"db_max_connections": 100}, "Connection budget exceeded"),
    "scaling_out_past_the_budget": (
        {"functions": more_send_message_instances()},
        "Connection budget exceeded",
    ),
    "more_concurrent_sends_than_send_message_can_hold": (
        {"tasks_max_concurrent_dispatches": 49},
        "tasks_max_concurrent_dispatches must be",
    ),
    "a_rate_above_the_cloud_tasks_ceiling": (
        {"sender_rate_limit_per_second": 501},
        "at most 500/s per queue",
    ),
    "a_url_form_google_does_not_assign": ({"public_url_form": "custom_domain"}, "public_url_form must be"),
    "a_fanout_timeout_beyond_the_ack_deadline": (
        {
            "functions": {
                **default_functions(),
                "fanout_recipients": {**default_functions()["fanout_recipients"], "timeout": 601},
            }
        },
        "ack deadline",
    ),
    "concurrency_without_a_full_cpu": (
        {"functions": {**default_functions(), "api": {**default_functions()["api"], "cpu": "0.5"}}},
        "only with cpu >= 1",
    ),
    "a_missing_entry_point": (
        {"functions": {ep: s for ep, s in default_functions().items() if ep != "api"}},
        "exactly the six entry points",
    ),
    "no_sender": ({"twilio_from": None}, "messages need a sender"),
    "a_sender_listed_twice": (
        {"senders": [sender(1, 80), sender(1, 80)]},
        "senders lists an address more than once",
    ),
    "a_sender_without_a_rate": ({"senders": [sender(1, 0)]}, "rate_limit_per_second of at least 1"),
    "a_sender_that_is_not_whatsapp": (
        {"senders": [{**sender(1, 80), "address": "+15550000001"}]},
        'address "whatsapp:+E164"',
    ),
    "senders_past_64_queues": ({"senders": [sender(i, 400) for i in range(80)]}, "past 64 send queues"),
}


@needs_terraform
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_plan_refuses(case: str, tmp_path: Path) -> None:
    overrides, message = REFUSED[case]
    result = plan_variables(tmp_path, {**REQUIRED_VARS, **overrides})
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split()), result.stderr


@needs_terraform
def test_the_largest_configuration_inside_the_budget_is_accepted(tmp_path: Path) -> None:
    # The defaults' 20 instances x (4 + 2) = 120 connections must stay strictly below max - reserved.
    result = plan_variables(
        tmp_path, {**REQUIRED_VARS, "db_max_connections": 126, "db_reserved_connections": 5}
    )
    assert result.returncode == 0, result.stderr
    result = plan_variables(
        tmp_path / "edge", {**REQUIRED_VARS, "db_max_connections": 125, "db_reserved_connections": 5}
    )
    assert result.returncode != 0


# --- the send queues, counted by terraform ---


@needs_terraform
def test_defaults_give_the_one_send_queue_there_always_was(tmp_path: Path) -> None:
    assert send_queue_locals(tmp_path / "defaults", {}) == {
        "send_queue_count": 1,
        "send_queue_names": ["send-messages"],
        "send_queue_rate": 80,  # the sender's rate, as the single queue had
        "send_queue_concurrency": 40,
    }


@needs_terraform
def test_four_senders_at_200_a_second_need_two_queues_of_500(tmp_path: Path) -> None:
    """80 (the configured sender) + 4 x 200 = 880 messages a second: past one queue's 500."""
    pool = [sender(n, 200, pool="a" if n < 2 else "b") for n in range(4)]
    assert send_queue_locals(tmp_path / "pool", {"senders": pool}) == {
        "send_queue_count": 2,
        "send_queue_names": ["send-messages", "send-messages-1"],
        "send_queue_rate": 500,
        "send_queue_concurrency": 20,  # the 40 in flight shared out
    }


@needs_terraform
@pytest.mark.parametrize(
    ("extra_rates", "queues"),
    [([420], 1), ([421], 2), ([420, 500], 2), ([420, 501], 3), ([400] * 40, 33)],
)
def test_a_queue_is_added_for_every_500_a_second_begun(
    extra_rates: list[int], queues: int, tmp_path: Path
) -> None:
    senders = [sender(n, rate) for n, rate in enumerate(extra_rates)]
    found = send_queue_locals(tmp_path / "sized", {"senders": senders})
    assert found["send_queue_count"] == queues
    # Named as the application names them: the one naming rule.
    assert found["send_queue_names"] == send_queue_names("send-messages", queues)
    assert found["send_queue_rate"] == min(500, 80 + sum(extra_rates))


# --- checkov ---


@pytest.fixture(scope="module")
def checkov_report() -> Iterator[dict[str, Any]]:
    # Installs .venv-infra on first use (a no-op afterwards), so `make test` and a bare pytest both run it.
    infra_venv()
    env = {
        **os.environ,
        # Fully offline: no update check, no policy download, no platform mapping, no package scan.
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        [
            str(INFRA_VENV / "bin" / "checkov"),
            *("-d", str(TERRAFORM_DIR), "--framework", "terraform", "--skip-download"),
            *("--compact", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.stdout.strip(), result.stderr
    yield json.loads(result.stdout)


def test_checkov_finds_no_failed_checks(checkov_report: dict[str, Any]) -> None:
    results = checkov_report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_every_checkov_skip_is_justified(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "the report lists skips, so this test is looking at them"
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for c in skipped
        if len(c["check_result"].get("suppress_comment", "").split()) < 8
    ]
    assert unjustified == []
