"""infra/deploy/gcloud_deploy.sh: valid, shellcheck-clean, and deploying what the terraform deploys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.tasks import send_queue_names
from tests.infra.terraform_config import (
    ROOT,
    TerraformConfig,
    block,
    bundle_files,
    entry_points,
    infra_venv,
    load_terraform,
    send_queue_locals,
)

SCRIPT = ROOT / "infra" / "deploy" / "gcloud_deploy.sh"
INGRESS = {"all": "ALLOW_ALL", "internal-only": "ALLOW_INTERNAL_ONLY"}


@pytest.fixture(scope="module")
def tf() -> TerraformConfig:
    return load_terraform()


def script_functions() -> dict[str, dict[str, str]]:
    """The FUNCTIONS table of the script, by entry point."""
    table = re.search(r"^FUNCTIONS=\(\n(.*?)^\)", SCRIPT.read_text(), re.M | re.S)
    assert table is not None
    columns = ["memory", "cpu", "timeout", "concurrency", "min", "max"]
    rows = [line.strip().strip('"').split() for line in table.group(1).splitlines()]
    return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}


def run_script_function(name: str, *args: str) -> str:
    """Runs one shell function of the script without running the script's main `case`."""
    source = SCRIPT.read_text().split('\ncase "${1:-}" in')[0]
    result = subprocess.run(
        ["bash", "-c", f'{source}\n{name} "$@"', "gcloud_deploy", *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "PROJECT_ID": "ese-prod-123",
            "PROJECT_NUMBER": "123456789012",
            "REPO_ROOT": str(ROOT),
        },
    )
    return result.stdout.strip()


def test_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_script_is_shellcheck_clean() -> None:
    result = subprocess.run(
        [str(infra_venv() / "bin" / "shellcheck"), str(SCRIPT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_staged_bundle_is_the_terraform_allowlist(tf: TerraformConfig, tmp_path: Path) -> None:
    subprocess.run([str(SCRIPT), "stage", str(tmp_path / "bundle")], check=True)
    staged = {
        p.relative_to(tmp_path / "bundle").as_posix() for p in (tmp_path / "bundle").rglob("*") if p.is_file()
    }
    assert staged == set(bundle_files(tf))
    assert (tmp_path / "bundle" / "main.py").read_bytes() == (ROOT / "functions" / "main.py").read_bytes()


def test_staged_bundle_loads_every_entry_point_on_its_own(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    subprocess.run([str(SCRIPT), "stage", str(bundle)], check=True)
    # -I: no PYTHONPATH and no current directory, so only the bundle and the installed packages count.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import main, shared; "
        "assert shared.__file__.startswith(sys.argv[1]), shared.__file__; "
        "print(' '.join(n for n in ('inbound_webhook', 'status_webhook', 'api', 'trigger_campaign', "
        "'fanout_recipients', 'send_message') if callable(getattr(main, n, None))))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(bundle)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 6


def test_script_sizes_and_exposes_each_function_as_terraform_does(tf: TerraformConfig) -> None:
    sizing = tf.default("functions")
    table = entry_points()
    for ep, row in script_functions().items():
        # Reach (trigger, ingress, invokers) is read from the table terraform reads, not written twice.
        assert run_script_function("entry_point", ep, "trigger") == table[ep]["trigger"]
        assert INGRESS[run_script_function("ingress_flag", ep)] == table[ep]["ingress"]
        members = run_script_function("invoker_members", ep).split()
        expected_members = [
            "allUsers"
            if who == "allUsers"
            else f"serviceAccount:ese-{who.replace('_', '-')}@ese-prod-123.iam.gserviceaccount.com"
            for who in table[ep]["invokers"]
        ]
        assert members == expected_members
        expected = sizing[ep]
        assert (row["memory"], row["cpu"]) == (expected["memory"], expected["cpu"])
        assert [int(row[k]) for k in ("timeout", "concurrency", "min", "max")] == [
            expected[k] for k in ("timeout", "concurrency", "min_instances", "max_instances")
        ]
    assert set(script_functions()) == set(sizing)


def test_script_defaults_equal_the_terraform_variable_defaults(tf: TerraformConfig) -> None:
    defaults = dict(re.findall(r'^([A-Z_]+)="\$\{\1:-([^}]*)\}"$', SCRIPT.read_text(), re.M))
    assert "DB_POOL_SIZE" in defaults
    # No further senders: terraform's empty list, the script's empty string.
    assert (defaults.pop("SENDERS"), tf.default("senders")) == ("", [])
    for name, value in defaults.items():
        assert str(tf.default(name.lower())) == value, name


def test_script_gives_each_function_the_secrets_terraform_gives_it(tf: TerraformConfig) -> None:
    for ep, keys in tf.locals["function_secrets"].items():
        assert set(run_script_function("secrets_for", ep).split()) == set(keys)
    assert {run_script_function("secret_id", k) for k in tf.locals["secrets"]} == {
        v.replace("${var.name_prefix}", "ese") for v in tf.locals["secrets"].values()
    }


def test_script_configures_queue_and_subscription_as_terraform_does(tf: TerraformConfig) -> None:
    text = " ".join(SCRIPT.read_text().split())
    retry = block(tf.resource("google_cloud_tasks_queue", "send_messages"), "retry_config")
    for flag, key in [
        ("--max-attempts", "max_attempts"),
        ("--min-backoff", "min_backoff"),
        ("--max-backoff", "max_backoff"),
        ("--max-doublings", "max_doublings"),
        ("--max-retry-duration", "max_retry_duration"),
    ]:
        assert f"{flag} {retry[key]} " in text
    subscription = tf.resource("google_pubsub_subscription", "fanout_push")
    policy = block(subscription, "retry_policy")
    assert (
        f"--min-retry-delay {policy['minimum_backoff']} --max-retry-delay {policy['maximum_backoff']}" in text
    )
    assert '--ack-deadline "$(timeout_of fanout_recipients)"' in text
    assert subscription["ack_deadline_seconds"] == '${var.functions["fanout_recipients"].timeout}'


@pytest.mark.parametrize(
    ("senders", "expected"),
    [
        ("", {"names": ["send-messages"], "rate": "80", "concurrency": "40"}),
        (
            ",".join(f"whatsapp:+1555000000{n}=200" for n in range(4)),  # 80 + 800: two queues
            {"names": ["send-messages", "send-messages-1"], "rate": "500", "concurrency": "20"},
        ),
    ],
)
def test_script_sizes_the_send_queues_as_terraform_does(
    senders: str, expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SENDERS", senders)
    names = run_script_function("send_queue_names").split()
    found = {
        "names": names,
        "rate": run_script_function("send_queue_rate"),
        "concurrency": run_script_function("send_queue_concurrency"),
    }
    assert found == expected
    assert names == send_queue_names("send-messages", len(names))
    pool = [
        {"address": entry.split("=")[0], "rate_limit_per_second": int(entry.split("=")[1]), "pool": "main"}
        for entry in filter(None, senders.split(","))
    ]
    terraform = send_queue_locals(tmp_path / "tf", {"senders": pool})
    assert (terraform["send_queue_names"], str(terraform["send_queue_rate"])) == (names, found["rate"])
    assert str(terraform["send_queue_concurrency"]) == found["concurrency"]


def test_script_refuses_a_malformed_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDERS", "whatsapp:+15550000001=fast")
    with pytest.raises(subprocess.CalledProcessError) as refused:
        run_script_function("send_queue_count")
    assert "is not whatsapp:+E164=RATE" in refused.value.stderr


def test_script_creates_every_send_queue_and_grants_on_each_and_tells_the_app_their_count() -> None:
    text = SCRIPT.read_text()
    assert "for queue in $(send_queue_names); do" in text
    assert text.count('gcloud tasks queues add-iam-policy-binding "$queue"') == 2
    assert '"$QUEUE" --location' not in text  # nothing addresses the first queue alone
    assert 'printf \'TASKS_QUEUE_COUNT: "%s"\\n\' "$(send_queue_count)"' in text


def test_script_predicts_the_same_function_urls(tf: TerraformConfig) -> None:
    # The same forms as local.function_urls (tests/infra/test_terraform.py) with the same defaults: run.app
    # for the machine-called functions always, and for the public ones by default.
    assert (tf.default("region"), tf.default("name_prefix")) == ("us-central1", "ese")
    assert run_script_function("function_url", "send_message") == (
        "https://ese-send-message-123456789012.us-central1.run.app"
    )
    assert run_script_function("function_url", "api") == "https://ese-api-123456789012.us-central1.run.app"
    os.environ["PUBLIC_URL_FORM"] = "cloudfunctions"
    try:
        assert run_script_function("function_url", "api") == (
            "https://us-central1-ese-prod-123.cloudfunctions.net/ese-api"
        )
        assert run_script_function("function_url", "trigger_campaign") == (
            "https://ese-trigger-campaign-123456789012.us-central1.run.app"
        )
    finally:
        del os.environ["PUBLIC_URL_FORM"]


def test_script_never_puts_a_secret_on_a_command_line() -> None:
    text = SCRIPT.read_text()
    assert "--password" not in text
    assert not re.search(r"gcloud secrets versions add [^\n]*\$\{?(TWILIO_AUTH_TOKEN|API_TOKENS)", text)
    # Operators' tokens are added only when they differ from the latest version.
    assert 'add_secret_version_if_changed "$(secret_id TWILIO_AUTH_TOKEN)" "$TWILIO_AUTH_TOKEN"' in text
    assert 'add_secret_version_if_changed "$(secret_id API_TOKENS)" "$API_TOKENS"' in text


def test_script_adds_a_secret_version_only_when_the_value_changed(tmp_path: Path) -> None:
    """gcloud replaced by a stub that records what it was asked and holds one secret's latest value."""
    calls = tmp_path / "calls"
    stub = tmp_path / "gcloud"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'if [[ "$1 $2 $3" == "secrets versions access" ]]; then printf %s current-token; fi\n'
        'if [[ "$1 $2 $3" == "secrets versions add" ]]; then cat >> ' + str(tmp_path / "added") + "; fi\n"
    )
    stub.chmod(0o755)
    source = SCRIPT.read_text().split('\ncase "${1:-}" in')[0]
    env = {
        **os.environ,
        "PROJECT_ID": "p",
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "REPO_ROOT": str(ROOT),
    }
    for value in ("current-token", "new-token"):
        subprocess.run(
            ["bash", "-c", f'{source}\nadd_secret_version_if_changed ese-api-tokens "$1"', "x", value],
            env=env,
            check=True,
            capture_output=True,
        )
    assert (tmp_path / "added").read_text() == "new-token"
    assert "new-token" not in calls.read_text()  # the value went through stdin, not the arguments


def test_script_creates_the_database_with_terraforms_flags(tf: TerraformConfig) -> None:
    flags = re.search(r'--database-flags "([^"]+)"', SCRIPT.read_text())
    assert flags is not None
    scripted = dict(pair.split("=", 1) for pair in flags.group(1).split(","))
    settings = block(tf.resource("google_sql_database_instance", "main"), "settings")
    declared = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert declared.pop("max_connections") == "${tostring(var.db_max_connections)}"
    assert scripted.pop("max_connections") == "${DB_MAX_CONNECTIONS}"
    assert scripted == declared
