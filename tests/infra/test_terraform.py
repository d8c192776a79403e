"""infra/terraform held against the code it deploys: entry points, triggers, secrets, settings, bundle."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions
from pydantic import SecretStr

from infra.local.cloud_tasks_emulator.backoff import RetryPolicy
from shared.config import Settings
from tests.infra.import_closure import (
    app_files_imported_by,
    distribution_of,
    distributions_installed_by,
    third_party_modules,
)
from tests.infra.terraform_config import (
    MAIN_PY,
    ROOT,
    TERRAFORM_DIR,
    TerraformConfig,
    block,
    bundle_files,
    dynamic_block,
    entry_points,
    load_terraform,
    send_queue_locals,
)

TRIGGER_FOR_DECORATOR = {"http": "http", "cloud_event": "pubsub"}
GUIDE = ROOT / "README.md"

# Who reads which secret, as the README's operator guide documents it: every function touches PostgreSQL; the
# webhooks verify Twilio signatures and send_message calls Twilio; only the api checks bearer tokens.
SECRETS_NEEDED = {
    "inbound_webhook": {"DB_PASSWORD", "TWILIO_AUTH_TOKEN"},
    "status_webhook": {"DB_PASSWORD", "TWILIO_AUTH_TOKEN"},
    "api": {"DB_PASSWORD", "API_TOKENS", "TWILIO_AUTH_TOKEN"},  # a template's test send
    "trigger_campaign": {"DB_PASSWORD", "TWILIO_AUTH_TOKEN"},  # the tick's sweeper reads Twilio's list
    "fanout_recipients": {"DB_PASSWORD"},
    "send_message": {"DB_PASSWORD", "TWILIO_AUTH_TOKEN"},
}

# Read by functions-framework's gunicorn, not by Settings.
RUNTIME_ENV = {"THREADS"}


@pytest.fixture(scope="module")
def tf() -> TerraformConfig:
    return load_terraform()


def load_table() -> dict[str, dict[str, Any]]:
    return entry_points()


def entry_points_in_main() -> dict[str, str]:
    """Each decorated function in functions/main.py and its functions_framework decorator."""
    found: dict[str, str] = {}
    for node in ast.parse(MAIN_PY.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Attribute)
                    and ast.unparse(decorator.value) == "functions_framework"
                ):
                    found[node.name] = decorator.attr
    return found


def secret_settings() -> set[str]:
    """Environment names of the SecretStr settings. DATABASE_URL is excluded: it is the local-only
    alternative to INSTANCE_CONNECTION_NAME, and the two are refused together."""
    names = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    }
    return names - {"DATABASE_URL"}


def function_env_keys(tf: TerraformConfig) -> set[str]:
    """Every environment variable any function can get: the common map plus the conditional extras."""
    extras = tf.locals["sender_env"] + tf.locals["function_env"]
    return set(tf.locals["common_env"]) | set(re.findall(r"\b([A-Z][A-Z0-9_]+) =", extras))


def test_every_entry_point_in_main_is_deployed_as_one_function(tf: TerraformConfig) -> None:
    entry_points = entry_points_in_main()
    assert len(entry_points) == 6
    assert set(tf.default("functions")) == set(entry_points)
    assert tf.locals["entry_points"] == '${jsondecode(file("${path.module}/entry_points.json")).entry_points}'
    assert set(load_table()) == set(entry_points)
    function = tf.resource("google_cloudfunctions2_function", "fn")
    assert function["for_each"] == "${var.functions}"
    assert block(function, "build_config")["entry_point"] == "${each.key}"
    assert block(function, "build_config")["runtime"] == "python311"


def test_each_function_is_triggered_the_way_its_decorator_expects(tf: TerraformConfig) -> None:
    for entry_point, decorator in entry_points_in_main().items():
        assert load_table()[entry_point]["trigger"] == TRIGGER_FOR_DECORATOR[decorator]

    # Every function is served over HTTPS: none has an Eventarc trigger ...
    function = tf.resource("google_cloudfunctions2_function", "fn")
    assert "event_trigger" not in function
    assert not [d for d in function.get("dynamic", []) if "event_trigger" in d]

    # ... and the CloudEvent ones are exactly those a Pub/Sub push subscription delivers to.
    pushed_to = {
        match
        for body in tf.resources["google_pubsub_subscription"].values()
        if "push_config" in body
        for match in re.findall(r'local\.function_urls\["(\w+)"\]', str(body["push_config"]))
    }
    cloud_event_functions = {ep for ep, d in entry_points_in_main().items() if d == "cloud_event"}
    assert pushed_to == cloud_event_functions == {"fanout_recipients"}


def test_fanout_subscription_reads_the_topic_the_app_publishes_to(tf: TerraformConfig) -> None:
    subscription = tf.resource("google_pubsub_subscription", "fanout_push")
    assert subscription["topic"] == "${google_pubsub_topic.campaign_recipients.id}"
    assert tf.resource("google_pubsub_topic", "campaign_recipients")["name"] == "${local.topic_name}"
    assert tf.locals["topic_name"] == Settings.model_fields["pubsub_topic"].default
    assert tf.locals["queue_name"] == Settings.model_fields["tasks_queue"].default


def test_fanout_failures_retry_then_dead_letter_into_a_held_subscription(tf: TerraformConfig) -> None:
    subscription = tf.resource("google_pubsub_subscription", "fanout_push")
    assert block(subscription, "retry_policy")["minimum_backoff"] == "10s"
    dead_letter = block(subscription, "dead_letter_policy")
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.campaign_recipients_dead_letter.id}"
    assert dead_letter["max_delivery_attempts"] == "${var.fanout_max_delivery_attempts}"
    hold = tf.resource("google_pubsub_subscription", "dead_letter_hold")
    assert hold["topic"] == "${google_pubsub_topic.campaign_recipients_dead_letter.id}"
    # Without these two grants Pub/Sub cannot dead-letter and retries the page forever.
    agent_grants = {
        (kind, body["role"])
        for kind, named in tf.resources.items()
        for body in named.values()
        if body.get("member") == "${local.pubsub_service_agent}"
    }
    assert ("google_pubsub_topic_iam_member", "roles/pubsub.publisher") in agent_grants
    assert ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber") in agent_grants


def test_public_functions_are_the_webhooks_and_the_api_and_no_machine_called_one(tf: TerraformConfig) -> None:
    public = {ep for ep, e in load_table().items() if "allUsers" in e["invokers"]}
    assert public == {"inbound_webhook", "status_webhook", "api"}
    assert all(load_table()[ep]["ingress"] == "ALLOW_ALL" for ep in public)
    # allUsers is granted through the table's bindings only, never by another resource.
    anonymous_grants = [
        (kind, name)
        for kind, named in tf.resources.items()
        for name, body in named.items()
        if body.get("member") in ("allUsers", "allAuthenticatedUsers")
    ]
    assert anonymous_grants == []
    grant = tf.resource("google_cloud_run_service_iam_member", "invoker")
    assert grant["for_each"] == "${local.invoker_bindings}"
    assert grant["role"] == "roles/run.invoker"
    assert set(tf.resources["google_cloud_run_service_iam_member"]) == {"invoker"}
    assert "for who in e.invokers" in tf.locals["invoker_bindings"]
    assert 'who == "allUsers" ? "allUsers" : local.identities[who].member' in tf.locals["invoker_bindings"]


def test_machine_called_functions_are_unreachable_from_the_internet(tf: TerraformConfig) -> None:
    ingress = {ep: e["ingress"] for ep, e in load_table().items()}
    assert ingress == {
        "inbound_webhook": "ALLOW_ALL",
        "status_webhook": "ALLOW_ALL",
        "api": "ALLOW_ALL",
        "trigger_campaign": "ALLOW_INTERNAL_ONLY",
        "fanout_recipients": "ALLOW_INTERNAL_ONLY",
        "send_message": "ALLOW_INTERNAL_ONLY",
    }
    function = tf.resource("google_cloudfunctions2_function", "fn")
    assert block(function, "service_config")["ingress_settings"] == "${local.entry_points[each.key].ingress}"


def test_private_functions_are_invoked_only_by_their_one_caller(tf: TerraformConfig) -> None:
    invokers = {ep: e["invokers"] for ep, e in load_table().items() if "allUsers" not in e["invokers"]}
    assert invokers == {
        "trigger_campaign": ["scheduler"],
        "fanout_recipients": ["pubsub_push"],
        "send_message": ["tasks_invoker"],
    }
    assert tf.locals["identities"] == {
        "scheduler": "${google_service_account.scheduler}",
        "pubsub_push": "${google_service_account.pubsub_push}",
        "tasks_invoker": "${google_service_account.tasks_invoker}",
    }
    # The tokens those callers present are minted for the same accounts, and the app checks them.
    scheduler = block(tf.resource("google_cloud_scheduler_job", "trigger_campaign"), "http_target")
    assert (
        block(scheduler, "oidc_token")["service_account_email"] == "${google_service_account.scheduler.email}"
    )
    push = block(tf.resource("google_pubsub_subscription", "fanout_push"), "push_config")
    assert block(push, "oidc_token")["service_account_email"] == "${google_service_account.pubsub_push.email}"
    assert (
        tf.locals["common_env"]["TASKS_SERVICE_ACCOUNT_EMAIL"]
        == "${google_service_account.tasks_invoker.email}"
    )
    assert "OIDC_ALLOWED_EMAILS = local.function_callers[ep]" in tf.locals["function_env"]
    callers = tf.locals["function_callers"]
    assert "for who in e.invokers : local.identities[who].email" in callers
    assert '!contains(e.invokers, "allUsers")' in callers


def test_scheduler_calls_trigger_campaign_every_minute(tf: TerraformConfig) -> None:
    job = tf.resource("google_cloud_scheduler_job", "trigger_campaign")
    assert job["schedule"] == "* * * * *"
    target = block(job, "http_target")
    assert target["uri"] == '${local.function_urls["trigger_campaign"]}'
    assert block(target, "oidc_token")["audience"] == target["uri"]


def test_machine_callers_target_and_sign_for_the_run_app_url_the_app_checks(tf: TerraformConfig) -> None:
    """Internal ingress admits Scheduler, Pub/Sub and Cloud Tasks on run.app only: each caller's target,
    its token's audience and the URL the function checks `aud` against are one value."""
    urls = tf.locals["function_urls"]
    assert 'e.ingress == "ALLOW_INTERNAL_ONLY" || var.public_url_form == "run_app"' in urls
    assert "? local.run_app_urls[ep] : local.cloudfunction_urls[ep]" in urls
    assert tf.locals["run_app_urls"] == (
        "${{for ep, name in local.function_names : ep => "
        '"https://${name}-${data.google_project.this.number}.${var.region}.run.app"}}'
    )
    push = block(tf.resource("google_pubsub_subscription", "fanout_push"), "push_config")
    assert push["push_endpoint"].startswith('${local.function_urls["fanout_recipients"]}/projects/')
    assert block(push, "oidc_token")["audience"] == '${local.function_urls["fanout_recipients"]}'
    env = tf.locals["common_env"]
    # Cloud Tasks: the app creates tasks aimed at SEND_MESSAGE_URL with it as the audience
    # (shared/adapters/tasks.py), and send_message checks `aud` against the same setting.
    assert env["SEND_MESSAGE_URL"] == '${local.function_urls["send_message"]}'
    assert env["FANOUT_RECIPIENTS_URL"] == '${local.function_urls["fanout_recipients"]}'
    assert env["TRIGGER_CAMPAIGN_URL"] == '${local.function_urls["trigger_campaign"]}'
    assert tf.default("public_url_form") == "run_app"


def test_the_sql_user_is_abandoned_not_deleted_on_destroy(tf: TerraformConfig) -> None:
    assert tf.resource("google_sql_user", "app")["deletion_policy"] == "ABANDON"


def test_a_first_apply_waits_for_iam_and_creates_the_pubsub_service_agent(tf: TerraformConfig) -> None:
    identity = tf.resource("google_project_service_identity", "pubsub")
    assert (identity["service"], identity["provider"]) == ("pubsub.googleapis.com", "google-beta")
    assert (
        tf.locals["pubsub_service_agent"] == "serviceAccount:${google_project_service_identity.pubsub.email}"
    )
    wait = tf.resource("time_sleep", "iam_propagation")
    assert int(wait["create_duration"].removesuffix("s")) >= 120
    function = tf.resource("google_cloudfunctions2_function", "fn")
    assert "${time_sleep.iam_propagation}" in function["depends_on"]
    build = tf.resource("google_project_iam_member", "build")
    assert build["role"] == "roles/run.builder"


def test_every_secret_setting_has_a_secret_manager_secret(tf: TerraformConfig) -> None:
    assert secret_settings() == {"TWILIO_AUTH_TOKEN", "API_TOKENS", "DB_PASSWORD"}
    assert set(tf.locals["secrets"]) == secret_settings()


def test_each_function_receives_exactly_the_secrets_it_reads_from_secret_manager(tf: TerraformConfig) -> None:
    assert {ep: set(keys) for ep, keys in tf.locals["function_secrets"].items()} == SECRETS_NEEDED
    assert set().union(*SECRETS_NEEDED.values()) == secret_settings()
    wiring = dynamic_block(
        block(tf.resource("google_cloudfunctions2_function", "fn"), "service_config"),
        "secret_environment_variables",
    )
    assert wiring["for_each"] == "${toset(local.function_secrets[each.key])}"
    content = block(wiring, "content")
    assert content["key"] == "${secret_environment_variables.key}"
    assert (
        content["secret"] == "${google_secret_manager_secret.app[secret_environment_variables.key].secret_id}"
    )
    # Each function's account may read those secrets and no others.
    binding = tf.resource("google_secret_manager_secret_iam_member", "function_reads_secret")
    assert binding["for_each"] == "${local.secret_readers}"
    assert "local.function_secrets" in tf.locals["secret_readers"]
    assert binding["member"] == "${google_service_account.function[each.value.function].member}"


def test_no_secret_is_passed_as_a_plain_environment_variable(tf: TerraformConfig) -> None:
    env = function_env_keys(tf)
    assert env & (secret_settings() | {"DATABASE_URL"}) == set()


def test_every_environment_variable_is_a_setting_the_app_reads(tf: TerraformConfig) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    assert function_env_keys(tf) - settings - RUNTIME_ENV == set()


def test_every_public_url_setting_is_given_its_functions_url(tf: TerraformConfig) -> None:
    env = tf.locals["common_env"]
    url_settings = {name for name in Settings.model_fields if name.endswith("_url")} - {
        "database_url",
        "twilio_api_url",
        "oidc_certs_url",
    }  # local-only, emulator-only, Google's default
    for name in url_settings:
        entry_point = name.removesuffix("_url")
        assert env[name.upper()] == f'${{local.function_urls["{entry_point}"]}}'


def test_function_urls_are_predicted_in_the_gen2_form(tf: TerraformConfig) -> None:
    assert tf.locals["cloudfunction_urls"] == (
        "${{for ep, name in local.function_names : ep => "
        '"https://${var.region}-${var.project_id}.cloudfunctions.net/${name}"}}'
    )


def test_bundle_ships_every_app_module_that_main_imports(tf: TerraformConfig) -> None:
    shipped = bundle_files(tf)
    assert shipped["main.py"] == MAIN_PY
    assert shipped["requirements.txt"] == ROOT / "requirements.txt"
    needed = app_files_imported_by(MAIN_PY)
    assert ROOT / "shared" / "config.py" in needed
    assert needed - set(shipped.values()) == set()


def test_bundle_ships_only_runtime_code(tf: TerraformConfig) -> None:
    names = set(bundle_files(tf))
    assert {n.split("/")[0] for n in names} == {"main.py", "requirements.txt", "shared"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_every_third_party_import_is_installed_by_requirements() -> None:
    installed = distributions_installed_by(ROOT / "requirements.txt")
    modules = third_party_modules(app_files_imported_by(MAIN_PY) | {MAIN_PY})
    assert "google.cloud.sql.connector" in modules
    missing = {m: distribution_of(m) for m in modules if distribution_of(m) not in installed}
    assert missing == {}


def documented_settings() -> list[tuple[str, str, str]]:
    """(resource, setting path, value) rows of the guide's queue and subscription table."""
    row = re.compile(r"^\| `(google_\w+\.\w+)` \| `([\w.]+)` \| (\S+) \|", re.M)
    return row.findall(GUIDE.read_text())


def resolve(tf: TerraformConfig, value: Any, defaults: dict[str, Any] | None = None) -> Any:
    """A literal, or the default of the variable it names (`var.x` or `var.functions["ep"].field`), or
    the value of a send_queues.tf local in `defaults` (terraform's, from the variables' defaults)."""
    if not isinstance(value, str):
        return value
    if defaults is not None and (match := re.fullmatch(r"\$\{local\.(\w+)\}", value)):
        return defaults[match.group(1)]
    if match := re.fullmatch(r"\$\{var\.(\w+)\}", value):
        return tf.default(match.group(1))
    if match := re.fullmatch(r'\$\{var\.functions\["(\w+)"\]\.(\w+)\}', value):
        return tf.default("functions")[match.group(1)][match.group(2)]
    return value


def test_queue_and_subscription_settings_match_the_operator_guide(
    tf: TerraformConfig, tmp_path: Path
) -> None:
    defaults = send_queue_locals(tmp_path / "defaults", {})
    rows = documented_settings()
    assert len(rows) == 12
    for resource, path, documented in rows:
        kind, name = resource.split(".")
        body = tf.resource(kind, name)
        *blocks, attribute = path.split(".")
        for name_of_block in blocks:
            body = block(body, name_of_block)
        assert str(resolve(tf, body[attribute], defaults)) == documented, f"{resource} {path}"


def test_send_queue_keeps_retrying_a_crashed_send_for_a_day_backing_off_to_five_minutes(
    tf: TerraformConfig,
) -> None:
    retry = {
        k: resolve(tf, v)
        for k, v in block(tf.resource("google_cloud_tasks_queue", "send_messages"), "retry_config").items()
    }
    policy = RetryPolicy(
        max_attempts=int(retry["max_attempts"]),
        max_retry_duration=float(str(retry["max_retry_duration"]).removesuffix("s")),
        min_backoff=float(str(retry["min_backoff"]).removesuffix("s")),
        max_backoff=float(str(retry["max_backoff"]).removesuffix("s")),
        max_doublings=int(retry["max_doublings"]),
    )
    # The service's own backoff formula, as the local Cloud Tasks emulator implements it.
    assert [policy.delay_before_retry(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    day = 24 * 3600
    elapsed = sum(policy.delay_before_retry(n) for n in range(1, policy.max_attempts))
    assert day - 600 <= elapsed <= day + 3600  # its attempts take about the day its duration allows
    assert not policy.gives_up(1_000, day - 1)  # attempts alone never stop it
    assert not policy.gives_up(policy.max_attempts - 1, day)
    assert policy.gives_up(policy.max_attempts, day)


def test_queue_rate_and_the_apps_sender_cap_come_from_one_variable(tf: TerraformConfig) -> None:
    limits = block(tf.resource("google_cloud_tasks_queue", "send_messages"), "rate_limits")
    assert limits["max_dispatches_per_second"] == "${local.send_queue_rate}"
    assert limits["max_concurrent_dispatches"] == "${local.send_queue_concurrency}"
    # The queues' rate is the configured sender's plus the pool's (what each adds up to is
    # test_terraform_tools.py's, evaluated by terraform).
    assert "var.sender_rate_limit_per_second" in tf.locals["send_rate_total"]
    assert "var.senders" in tf.locals["send_rate_total"]
    assert (
        tf.locals["common_env"]["SENDER_RATE_LIMIT_PER_SECOND"]
        == "${tostring(var.sender_rate_limit_per_second)}"
    )
    assert (
        tf.default("sender_rate_limit_per_second")
        == Settings.model_fields["sender_rate_limit_per_second"].default
    )


def test_the_apps_database_ip_type_defaults_to_what_the_deployment_gives_the_instance(
    tf: TerraformConfig,
) -> None:
    ip = block(block(tf.resource("google_sql_database_instance", "main"), "settings"), "ip_configuration")
    assert ip["ipv4_enabled"] is True and "private_network" not in ip
    assert tf.locals["common_env"]["DB_IP_TYPE"] == "public" == Settings.model_fields["db_ip_type"].default


def test_the_health_report_can_read_the_send_queue_and_the_tick_can_drain_dead_letters(
    tf: TerraformConfig,
) -> None:
    """docs/architecture.md, "Health checks": GetQueue (cloudtasks.queues.get) from the api function, pull
    and acknowledge on the hold subscription (and only there) from trigger_campaign."""
    viewer = tf.resource("google_cloud_tasks_queue_iam_member", "api_reads_send_queue")
    assert (viewer["role"], viewer["member"]) == (
        "roles/cloudtasks.viewer",
        '${google_service_account.function["api"].member}',
    )
    # Every send queue: the report combines them all.
    assert viewer["count"] == "${local.send_queue_count}"
    assert viewer["name"] == "${google_cloud_tasks_queue.send_messages[count.index].name}"
    drain = tf.resource("google_pubsub_subscription_iam_member", "tick_drains_dead_letters")
    assert (drain["role"], drain["member"]) == (
        "roles/pubsub.subscriber",
        '${google_service_account.function["trigger_campaign"].member}',
    )
    assert drain["subscription"] == "${google_pubsub_subscription.dead_letter_hold.name}"
    assert tf.resource("google_pubsub_subscription", "dead_letter_hold")["name"] == (
        "${local.topic_name}-dead-letter-hold"
    )  # the name Settings.dead_letter_subscription derives from PUBSUB_TOPIC


# --- the send queues ---


def moved_blocks() -> set[tuple[str, str]]:
    moved: set[tuple[str, str]] = set()
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=SerializationOptions(strip_string_quotes=True))
        moved |= {(_address(b["from"]), _address(b["to"])) for b in parsed.get("moved", [])}
    return moved


def _address(value: str) -> str:
    return value.removeprefix("${").removesuffix("}")


def test_the_send_queues_are_counted_named_and_told_to_the_app(tf: TerraformConfig) -> None:
    queue = tf.resource("google_cloud_tasks_queue", "send_messages")
    assert queue["count"] == "${local.send_queue_count}"
    assert queue["name"] == "${local.send_queue_names[count.index]}"
    env = tf.locals["common_env"]
    assert env["TASKS_QUEUE"] == "${google_cloud_tasks_queue.send_messages[0].name}"
    assert env["TASKS_QUEUE_COUNT"] == "${tostring(local.send_queue_count)}"
    assert tf.default("senders") == []
    # Every function that creates send tasks may do so on every queue.
    enqueue = tf.resource("google_cloud_tasks_queue_iam_member", "function_enqueues_sends")
    assert "range(local.send_queue_count)" in enqueue["for_each"]
    assert enqueue["name"] == "${google_cloud_tasks_queue.send_messages[each.value.queue].name}"


def test_an_existing_deployments_queue_and_its_bindings_move_to_their_new_addresses() -> None:
    """The single queue and its IAM members become instance 0 / the queue-0 key: moved, not destroyed
    (a destroyed queue loses its tasks; a destroyed IAM member removes the binding its successor holds).
    Real terraform plans such moves as moves (no destroy); these are the addresses it is given."""
    enqueue = "google_cloud_tasks_queue_iam_member.function_enqueues_sends"
    assert moved_blocks() >= {
        ("google_cloud_tasks_queue.send_messages", "google_cloud_tasks_queue.send_messages[0]"),
        (
            "google_cloud_tasks_queue_iam_member.api_reads_send_queue",
            "google_cloud_tasks_queue_iam_member.api_reads_send_queue[0]",
        ),
        *(
            (f'{enqueue}["{function}"]', f'{enqueue}["{function}/send-messages"]')
            for function in ("fanout_recipients", "send_message", "trigger_campaign")
        ),
    }
