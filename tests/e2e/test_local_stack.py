"""The local stack (`make dev`, and the `local_stack` fixture): it comes up with every part wired as in
production, writes settings that work, and leaves no process or port behind when it stops or crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from alembic.script import ScriptDirectory
from google.auth.transport.requests import Request
from google.cloud import pubsub_v1, tasks_v2
from google.oauth2 import id_token
from sqlalchemy import create_engine, text

from infra.local import functions_runner, processes
from infra.local.emulator_clients import cloud_tasks
from infra.local.migrate import alembic_config
from infra.local.postgres import LocalPostgres
from infra.local.processes import ProcessRecord
from infra.local.pubsub_emulator import dead_letter_subscription, push_subscription
from infra.local.scheduler import LocalScheduler
from infra.local.stack import ROOT, LocalStack
from infra.local.stack_env import REQUIRED_KEYS, StackAddresses, build_env, read_env_file, uses_real_twilio
from infra.local.tasks_queues import SCHEDULER_QUEUE
from shared.adapters.twilio_client import make_twilio_client
from tests.e2e.conftest import cloned_database, stack_environ
from tests.emulators.conftest import RecordingTarget
from tests.infra.terraform_config import block, load_terraform

e2e = pytest.mark.e2e


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --- the running stack ---


@e2e
def test_every_entry_point_in_main_py_runs_as_its_own_server(local_stack: LocalStack) -> None:
    assert set(local_stack.function_ports) == {
        "inbound_webhook",
        "status_webhook",
        "api",
        "trigger_campaign",
        "fanout_recipients",
        "send_message",
    }
    for name, port in local_stack.function_ports.items():
        # functions-framework's own answers: 404 for HTTP functions, 405 (POST only) for event functions.
        status = requests.get(f"http://127.0.0.1:{port}/robots.txt", timeout=5).status_code
        assert status == (405 if name == "fanout_recipients" else 404), name


@e2e
def test_stack_env_file_holds_every_setting_the_functions_received(local_stack: LocalStack) -> None:
    written = read_env_file(local_stack.env_file)
    assert written == local_stack.env
    assert {key for key in REQUIRED_KEYS if not written.get(key)} == set()
    assert written["API_TOKEN"] == written["API_TOKENS"].split(",")[0]
    assert written["DASHBOARD_URL"] == written["API_URL"] + "/ui/"
    assert oct(local_stack.env_file.stat().st_mode & 0o777) == oct(0o600)


@e2e
def test_database_url_reaches_a_database_migrated_to_head(stack_env: dict[str, str]) -> None:
    engine = create_engine(stack_env["DATABASE_URL"])
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert version == ScriptDirectory.from_config(alembic_config(ROOT)).get_current_head()


@e2e
def test_pubsub_has_the_topic_and_a_push_subscription_to_fanout_with_retries_and_dead_letters(
    local_stack: LocalStack, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment variable is how the application's own client finds the emulator.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stack_env["PUBSUB_EMULATOR_HOST"])
    subscriber = pubsub_v1.SubscriberClient()
    project, topic = stack_env["GCP_PROJECT"], stack_env["PUBSUB_TOPIC"]
    push = subscriber.get_subscription(
        subscription=subscriber.subscription_path(project, push_subscription(topic))
    )
    held = subscriber.get_subscription(
        subscription=subscriber.subscription_path(project, dead_letter_subscription(topic))
    )
    subscriber.close()

    # The emulator pushes to the relay that adds Pub/Sub's OIDC token (the emulator sends none), which
    # forwards to fanout_recipients' front-end URL (test_front_end_admits_the_relays_push below).
    assert push.topic == f"projects/{project}/topics/{topic}"
    assert push.push_config.push_endpoint == f"{local_stack.push_relay_url}/projects/{project}/topics/{topic}"
    assert push.ack_deadline_seconds == 540  # fanout_recipients' timeout, as in terraform
    assert push.retry_policy.minimum_backoff.total_seconds() == 1
    assert push.dead_letter_policy.dead_letter_topic == f"projects/{project}/topics/{topic}-dead-letter"
    assert push.dead_letter_policy.max_delivery_attempts == 10
    assert held.topic == push.dead_letter_policy.dead_letter_topic


@e2e
def test_send_queue_exists_with_the_production_rate_and_retry_settings(stack_env: dict[str, str]) -> None:
    client = cloud_tasks(stack_env["CLOUD_TASKS_EMULATOR_HOST"])
    queue = client.get_queue(
        name=client.queue_path(stack_env["GCP_PROJECT"], stack_env["GCP_REGION"], stack_env["TASKS_QUEUE"])
    )
    client.transport.close()  # type: ignore[no-untyped-call]  # gRPC transport, untyped
    assert queue.state == tasks_v2.Queue.State.RUNNING
    assert queue.rate_limits.max_dispatches_per_second == int(stack_env["SENDER_RATE_LIMIT_PER_SECOND"]) == 80
    assert queue.rate_limits.max_concurrent_dispatches == 40
    # The retry policy terraform gives production's queue.
    declared = block(load_terraform().resource("google_cloud_tasks_queue", "send_messages"), "retry_config")
    retry = queue.retry_config
    assert retry.max_attempts == declared["max_attempts"]
    assert f"{retry.max_backoff.total_seconds():.0f}s" == declared["max_backoff"]
    assert f"{retry.max_retry_duration.total_seconds():.0f}s" == declared["max_retry_duration"]
    assert retry.max_doublings == declared["max_doublings"]


@e2e
def test_twilio_emulator_accepts_a_send_with_the_credentials_in_stack_env(
    clean_stack: dict[str, str],
) -> None:
    env = clean_stack
    client = make_twilio_client(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"], env["TWILIO_API_URL"])
    sent = client.messages.create(to="whatsapp:+15551230001", from_=env["TWILIO_FROM"], body="hello")

    listed = requests.get(env["TWILIO_API_URL"] + "/_emulator/messages", timeout=5).json()
    assert [m["sid"] for m in listed] == [sent.sid]


@e2e
def test_a_message_published_to_the_topic_is_pushed_to_the_fanout_process(
    local_stack: LocalStack, clean_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = local_stack.log_path("fanout_recipients")
    size_before = log.stat().st_size
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", clean_stack["PUBSUB_EMULATOR_HOST"])
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(clean_stack["GCP_PROJECT"], clean_stack["PUBSUB_TOPIC"])
    publisher.publish(topic, json.dumps({"probe": "not a page of recipients"}).encode()).result(timeout=10)
    publisher.transport.close()

    # Nothing else calls fanout_recipients, and it logs every message it cannot use (a malformed page is
    # acknowledged and logged, docs/architecture.md, "Transport outcomes"): its log grows only if the push arrived.
    assert wait_for(lambda: log.stat().st_size > size_before), log.read_text()[-2000:]


@e2e
def test_scheduler_posts_an_empty_request_with_an_oidc_token_trigger_campaign_can_verify(
    stack_env: dict[str, str],
) -> None:
    target = RecordingTarget()
    env = stack_env
    queue = f"projects/{env['GCP_PROJECT']}/locations/{env['GCP_REGION']}/queues/{SCHEDULER_QUEUE}"
    scheduler = LocalScheduler(
        env["CLOUD_TASKS_EMULATOR_HOST"],
        queue,
        target.url,
        env["SCHEDULER_SERVICE_ACCOUNT_EMAIL"],
        interval=0.2,
    )
    scheduler.start()
    try:
        assert wait_for(lambda: len(target.arrivals) >= 2)
    finally:
        scheduler.stop()
        target.stop()

    call = target.arrivals[0]
    assert (call.method, call.body) == ("POST", b"")
    token = (call.header("Authorization") or "").removeprefix("Bearer ")
    claims = id_token.verify_token(token, Request(), audience=target.url, certs_url=env["OIDC_CERTS_URL"])
    assert claims["email"] == env["SCHEDULER_SERVICE_ACCOUNT_EMAIL"]


@e2e
def test_each_function_gets_productions_concurrency_and_allowed_caller(local_stack: LocalStack) -> None:
    def process_env(name: str) -> dict[str, str]:
        pid = local_stack.pid(name)
        pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        return dict(pair.split("=", 1) for pair in pairs if "=" in pair)

    env = local_stack.env
    trigger, send, api = process_env("trigger_campaign"), process_env("send_message"), process_env("api")
    assert (trigger["THREADS"], trigger["OIDC_ALLOWED_EMAILS"]) == (
        "1",
        env["SCHEDULER_SERVICE_ACCOUNT_EMAIL"],
    )
    assert (send["THREADS"], send["OIDC_ALLOWED_EMAILS"]) == ("12", env["TASKS_SERVICE_ACCOUNT_EMAIL"])
    assert "OIDC_ALLOWED_EMAILS" not in api
    assert {key: api[key] for key in env} == env


# --- starting and stopping from the command line ---


@pytest.fixture
def cli_database_url(pg: LocalPostgres, template_database: str) -> Iterator[str]:
    with cloned_database(pg, template_database, "cli") as url:
        yield url


def start_cli_stack(state_dir: Path, database_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.local.stack",
            "up",
            "--state-dir",
            str(state_dir),
            "--database-url",
            database_url,
        ],
        cwd=ROOT,
        env=stack_environ() | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_until_up(runner: subprocess.Popen[bytes], state_dir: Path) -> list[ProcessRecord]:
    """The stack's processes once stack.env exists (it is written last, when everything answers)."""
    ready = wait_for(lambda: (state_dir / "stack.env").exists() or runner.poll() is not None, timeout=120)
    assert ready and runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
    state = json.loads((state_dir / "stack.pids").read_text())
    return [ProcessRecord.from_json(r) for r in state["processes"]]


def assert_all_gone(records: list[ProcessRecord], reused: frozenset[int] = frozenset()) -> None:
    """None of these processes runs, and none of their ports accepts, except the ports in `reused`: a
    stack started since may have been given a port the dead one freed (the kernel hands them out again)."""
    assert [r.name for r in records if processes.is_ours(r)] == []
    assert [
        r.name
        for r in records
        if r.port is not None and r.port not in reused and processes.port_accepts(r.port)
    ] == []


@e2e
def test_ctrl_c_stops_every_process_and_frees_every_port(tmp_path: Path, cli_database_url: str) -> None:
    runner = start_cli_stack(tmp_path, cli_database_url)
    records = wait_until_up(runner, tmp_path)
    assert {r.name for r in records} >= {
        "runner",
        "pubsub-emulator",
        "cloud-tasks-emulator",
        "twilio-emulator",
        "api",
    }
    # The recorded Pub/Sub PID is the Java process itself, not a shell that would outlive a signal.
    pubsub = next(r for r in records if r.name == "pubsub-emulator")
    assert Path(f"/proc/{pubsub.pid}/exe").resolve().name == "java"

    runner.send_signal(signal.SIGINT)

    assert runner.wait(timeout=60) == 0
    assert_all_gone(records)
    assert not (tmp_path / "stack.env").exists()
    assert not (tmp_path / "stack.pids").exists()


@e2e
def test_up_after_a_crashed_runner_starts_cleanly_and_stop_ends_the_new_one(
    tmp_path: Path, cli_database_url: str
) -> None:
    crashed = start_cli_stack(tmp_path, cli_database_url)
    crashed_records = wait_until_up(crashed, tmp_path)
    crashed.kill()  # no cleanup at all: stack.pids and stack.env stay behind
    crashed.wait()
    (tmp_path / "stack.env").unlink()  # so that the next wait sees the new stack's file

    second = start_cli_stack(tmp_path, cli_database_url)
    second_records = wait_until_up(second, tmp_path)
    assert_all_gone(
        [r for r in crashed_records if r.name != "runner"],
        reused=frozenset(r.port for r in second_records if r.port is not None),
    )
    stopped = subprocess.run(
        [sys.executable, "-m", "infra.local.stack", "stop", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        env=stack_environ() | {"PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )

    assert stopped.returncode == 0
    assert second.wait(timeout=30) == 0  # the live runner was asked to stop and cleaned up itself
    assert_all_gone(second_records)
    assert not (tmp_path / "stack.pids").exists()


# --- safety of stop, and the choice of Twilio ---


def test_stop_leaves_a_process_alone_once_its_pid_no_longer_matches_the_record() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        start_time = processes.start_time(sleeper.pid)
        assert start_time is not None
        reused_pid = ProcessRecord("api", sleeper.pid, None, "sleep 30", start_time + 1)
        other_command = ProcessRecord("api", sleeper.pid, None, "functions_framework", start_time)

        processes.stop_processes([reused_pid, other_command], grace_seconds=0.1)

        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_terminates_a_process_that_still_matches_its_record() -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    start_time = processes.start_time(sleeper.pid)
    assert start_time is not None

    processes.stop_processes(
        [ProcessRecord("api", sleeper.pid, None, "sleep 30", start_time)], grace_seconds=5
    )

    assert sleeper.wait(timeout=5) == -signal.SIGTERM


REAL_ACCOUNT = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "secret",
    "TWILIO_FROM": "whatsapp:+1",
}


@pytest.mark.parametrize(
    ("environ", "real"),
    [
        ({}, False),
        (REAL_ACCOUNT, False),  # no public webhook URL: Twilio could not call us back
        (REAL_ACCOUNT | {"PUBLIC_BASE_URL": "https://tunnel.example"}, True),
        (REAL_ACCOUNT | {"INBOUND_WEBHOOK_URL": "https://a.example/in"}, False),
        (REAL_ACCOUNT | {"INBOUND_WEBHOOK_URL": "https://a/in", "STATUS_WEBHOOK_URL": "https://a/st"}, True),
        (
            {k: v for k, v in REAL_ACCOUNT.items() if k != "TWILIO_FROM"} | {"PUBLIC_BASE_URL": "https://t"},
            False,
        ),
    ],
)
def test_real_twilio_replaces_the_emulator_only_with_an_account_a_sender_and_public_webhooks(
    environ: dict[str, str], real: bool
) -> None:
    assert uses_real_twilio(environ) is real


def test_with_real_twilio_the_credentials_and_public_webhooks_pass_through_and_no_emulator_url() -> None:
    addresses = StackAddresses(
        database_url="postgresql+pg8000://postgres@127.0.0.1:1/x",
        pubsub_port=2,
        tasks_port=3,
        oidc_certs_url="http://127.0.0.1:4/certs",
        twilio_port=None,
        function_ports={name: 10 + i for i, name in enumerate(functions_runner.THREADS)},
        front_end_ports={name: 20 + i for i, name in enumerate(functions_runner.THREADS)},
        ca_bundle="ca-bundle.pem",
    )
    environ = REAL_ACCOUNT | {"PUBLIC_BASE_URL": "https://tunnel.example/"}

    env = build_env(addresses, environ)

    assert "TWILIO_API_URL" not in env
    assert {k: env[k] for k in REAL_ACCOUNT} == REAL_ACCOUNT
    assert env["INBOUND_WEBHOOK_URL"] == "https://tunnel.example/inbound_webhook"
    assert env["STATUS_WEBHOOK_URL"] == "https://tunnel.example/status_webhook"


# --- supervision: what dies is started again, as Cloud Run starts a new instance ---


@e2e
@pytest.mark.parametrize("name", ["send_message", "cloud-tasks-emulator"])
def test_a_process_killed_with_sigkill_is_started_again_on_its_port_and_the_restart_is_logged(
    local_stack: LocalStack, clean_stack: dict[str, str], name: str
) -> None:
    before = local_stack.restarts.get(name, 0)
    old_pid = local_stack.pid(name)

    os.kill(old_pid, signal.SIGKILL)

    assert wait_for(lambda: local_stack.restarts.get(name, 0) > before, timeout=30)
    assert local_stack.pid(name) != old_pid
    log = local_stack.log_path("supervisor").read_text()
    assert wait_for(
        lambda: f"{name} is back" in local_stack.log_path("supervisor").read_text(), timeout=60
    ), log
    if name == "send_message":
        port = local_stack.function_ports[name]
        assert requests.get(f"http://127.0.0.1:{port}/robots.txt", timeout=5).status_code == 404
    else:
        # Its queues exist again, as the stack made them at start.
        client = cloud_tasks(clean_stack["CLOUD_TASKS_EMULATOR_HOST"])
        queue = client.get_queue(
            name=client.queue_path(
                clean_stack["GCP_PROJECT"], clean_stack["GCP_REGION"], clean_stack["TASKS_QUEUE"]
            )
        )
        client.transport.close()  # type: ignore[no-untyped-call]  # gRPC transport, untyped
        assert queue.state == tasks_v2.Queue.State.RUNNING
