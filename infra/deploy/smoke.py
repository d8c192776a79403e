"""`make smoke`: after a deployment, prove every hop a campaign takes, in order, one line per hop, with the
likely fix when one fails.

    python -m infra.deploy.smoke --to +447700900123          # a deployment (terraform outputs)
    python -m infra.deploy.smoke --local                     # `make dev` (.local/stack.env)

Hops (each waits for the one before it):
  1. webhook signature: an unsigned status callback must be refused (403) and a signed one accepted;
  2. operator API: the API token is accepted;
  3. test recipient: the number is opted in (locally the smoke texts START to it through the Twilio
     emulator, which also proves the inbound webhook; for a deployment, text START from the phone first:
     that also opens WhatsApp's 24-hour window, so the free-form test message may be sent);
  4. scheduler -> trigger_campaign: a forced tick (`gcloud scheduler jobs run`; locally the local
     scheduler's tick) is seen in the health view's last tick;
  5. Pub/Sub push -> fanout_recipients: a one-recipient campaign (topic `smoke`, only the test number is
     subscribed) is triggered through the API and its message row appears;
  6. Cloud Tasks -> send_message: Twilio accepts the message (it has a SID);
  7. status callback -> status_webhook: Twilio's callback moves it to sent or further.

A deployment's secrets come from the environment (API_TOKEN, TWILIO_AUTH_TOKEN) or, when unset, from Secret
Manager through gcloud. The one real message needs a confirmation (or --yes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[2]
SMOKE_TOPIC = "smoke"
LOCAL_TEST_NUMBER = "+14155550100"
SENT_OR_BEYOND = ("SENT", "DELIVERED", "READ")
ACCEPTED_OR_BEYOND = ("ACCEPTED", *SENT_OR_BEYOND)
FINAL_REFUSALS = ("FAILED", "UNDELIVERED", "WITHHELD", "SKIPPED")


@dataclass
class Target:
    """Where the smoke runs and what it holds: URLs, secrets, the test number, how to force a tick."""

    name: str
    api_url: str
    status_webhook_url: str
    api_token: str
    twilio_auth_token: str
    twilio_account_sid: str
    to: str
    force_tick: Callable[[], None]
    # Locally: text START through the Twilio emulator before the campaign (None for a deployment).
    opt_in: Callable[[str], None] | None = None
    content_sid: str | None = None
    wait_seconds: float = 90.0


@dataclass
class Hop:
    name: str
    passed: bool | None = None  # None: skipped
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        text = f"{verdict}  {self.name:<38} {self.detail}"
        if self.passed is False and self.fix:
            text += f"\n      likely fix: {self.fix}"
        return text


@dataclass
class Run:
    target: Target
    hops: list[Hop] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    campaign_id: int | None = None
    message: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(h.passed for h in self.hops)


class Api:
    def __init__(self, target: Target) -> None:
        self.base = target.api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {target.api_token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=30, **kwargs)


def run_smoke(target: Target, out: Callable[[str], None] = print) -> Run:
    run = Run(target)
    api = Api(target)
    steps: list[tuple[str, Callable[[Run, Api], Hop], str | None]] = [
        ("webhook signature", _signature, None),
        ("operator API", _operator_api, None),
        ("test recipient", _recipient, "operator API"),
        ("scheduler -> trigger_campaign", _scheduler, "operator API"),
        ("Pub/Sub push -> fanout_recipients", _fanout, "test recipient"),
        ("Cloud Tasks -> send_message", _send, "Pub/Sub push -> fanout_recipients"),
        ("status callback -> status_webhook", _callback, "Cloud Tasks -> send_message"),
    ]
    results: dict[str, Hop] = {}
    for name, check, needs in steps:
        if needs is not None and not results[needs].passed:
            hop = Hop(name, None, f"(needs: {needs})")
        else:
            try:
                hop = check(run, api)
            except requests.RequestException as error:
                hop = Hop(name, False, f"no answer: {type(error).__name__}: {error}", _UNREACHABLE)
        hop.name = name
        results[name] = hop
        run.hops.append(hop)
        out(hop.line())
    _clean_up(run, api)
    return run


_UNREACHABLE = "check the URL (terraform output) and that the function is deployed and its ingress allows you"


def _signature(run: Run, api: Api) -> Hop:
    target = run.target
    sid = "SM" + secrets.token_hex(16)
    params = {"MessageSid": sid, "MessageStatus": "sent", "AccountSid": target.twilio_account_sid}
    unsigned = requests.post(target.status_webhook_url, data=params, timeout=30)
    signature = RequestValidator(target.twilio_auth_token).compute_signature(
        target.status_webhook_url, params
    )
    signed = requests.post(
        target.status_webhook_url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30
    )
    detail = f"unsigned callback {unsigned.status_code}, signed callback {signed.status_code}"
    if unsigned.status_code != 403:
        return Hop(
            "",
            False,
            detail,
            "an unsigned callback must get 403: is TWILIO_AUTH_TOKEN set for status_webhook?",
        )
    if signed.status_code != 200:
        fix = (
            "the signature did not verify: TWILIO_AUTH_TOKEN in Secret Manager must be the account's auth "
            "token, and STATUS_WEBHOOK_URL must be exactly the URL called (Twilio signs the URL)"
            if signed.status_code == 403
            else "the webhook failed with its database: check the function's logs and Cloud SQL"
        )
        return Hop("", False, detail, fix)
    return Hop("", True, detail)


def _operator_api(run: Run, api: Api) -> Hop:
    response = api.call("GET", "/v1/monitoring/health")
    if response.status_code == 401:
        return Hop("", False, "401: the API token was refused", "use a token from the ese-api-tokens secret")
    if response.status_code != 200:
        return Hop("", False, f"health answered {response.status_code}", _UNREACHABLE)
    failing = [c["name"] for c in response.json()["checks"] if c["level"] == "failing"]
    return Hop(
        "", True, f"health {response.json()['status']}" + (f" (failing: {failing})" if failing else "")
    )


def _recipient(run: Run, api: Api) -> Hop:
    target = run.target
    if target.opt_in is not None:
        target.opt_in(target.to)
    response = api.call("GET", f"/v1/users/{target.to}")
    if response.status_code == 400:
        return Hop(
            "", False, f"{target.to} is not a valid phone number", "pass --to in E.164, e.g. +447700900123"
        )
    if response.status_code == 404:
        return Hop(
            "", False, f"{target.to} is not a user", "text START from the test phone to the sender first"
        )
    user = response.json()
    if user["consent_state"] != "OPT_IN":
        return Hop(
            "",
            False,
            f"{target.to} is {user['consent_state']}",
            "text START from the test phone to the sender (the smoke never changes anyone's consent)",
        )
    subscribed = api.call("PUT", f"/v1/users/{target.to}/subscriptions/{SMOKE_TOPIC}")
    if not subscribed.ok:
        return Hop("", False, f"subscribing to the smoke topic: {subscribed.status_code}", _UNREACHABLE)
    return Hop("", True, f"{user['phone']} opted in, subscribed to topic {SMOKE_TOPIC!r}")


def _last_tick(api: Api) -> str | None:
    checks = {c["name"]: c for c in api.call("GET", "/v1/monitoring/health").json()["checks"]}
    at = checks.get("scheduler", {}).get("at")
    return str(at) if at else None


def _scheduler(run: Run, api: Api) -> Hop:
    before = _last_tick(api)
    run.target.force_tick()
    deadline = time.monotonic() + run.target.wait_seconds
    while time.monotonic() < deadline:
        after = _last_tick(api)
        if after is not None and after != before:
            return Hop("", True, f"forced tick recorded at {after}")
        time.sleep(1)
    return Hop(
        "",
        False,
        f"no new tick within {run.target.wait_seconds:.0f} s (last: {before or 'never'})",
        "the job must target trigger_campaign's run.app URL with an OIDC token of the ese-scheduler account "
        "(its audience the same URL), and that account needs roles/run.invoker on it: "
        "`gcloud scheduler jobs describe` and trigger_campaign's logs",
    )


def _fanout(run: Run, api: Api) -> Hop:
    target = run.target
    template: dict[str, Any] = {
        "name": f"smoke-{run.run_id}",
        "content": f"Event Stream Engine smoke test {run.run_id}",
    }
    if target.content_sid:
        template |= {"content_sid": target.content_sid}
    created = [
        api.call("POST", "/v1/templates", json=template),
        api.call(
            "POST",
            "/v1/segments",
            json={"name": f"smoke-{run.run_id}", "definition": {"operator": "AND", "conditions": []}},
        ),
    ]
    if not all(r.status_code == 201 for r in created):
        return Hop(
            "", False, f"creating the template/segment: {[r.status_code for r in created]}", _UNREACHABLE
        )
    campaign = api.call(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"smoke-{run.run_id}",
            "template_id": created[0].json()["id"],
            "segment_id": created[1].json()["id"],
            "topic": SMOKE_TOPIC,
            "rate_limit_per_second": 1,
            # The check sends now, at any hour: no quiet hours rather than DEFAULT_QUIET_HOURS.
            "quiet_hours_start": None,
            "quiet_hours_end": None,
        },
    )
    if campaign.status_code != 201:
        return Hop(
            "", False, f"creating the campaign: {campaign.status_code} {campaign.text[:200]}", _UNREACHABLE
        )
    run.campaign_id = campaign.json()["id"]
    started = api.call("POST", f"/v1/campaigns/{run.campaign_id}/trigger")
    if not started.ok or started.json().get("recipients") != 1:
        return Hop(
            "", False, f"trigger answered {started.status_code}: {started.text[:200]}", "see the API's answer"
        )
    message = _wait_for_message(run, api, lambda m: m is not None)
    if message is None:
        return Hop(
            "",
            False,
            f"campaign {run.campaign_id} started but no message row within {target.wait_seconds:.0f} s",
            "the push subscription campaign-recipients-fanout must push to fanout_recipients' run.app URL with "
            "an OIDC token of ese-pubsub-push (audience the same URL); look for pages in "
            "campaign-recipients-dead-letter-hold and in fanout_recipients' logs",
        )
    return Hop("", True, f"campaign {run.campaign_id}: message {message['id']} written ({message['status']})")


def _send(run: Run, api: Api) -> Hop:
    message = _wait_for_message(
        run, api, lambda m: m is not None and m["status"] not in ("QUEUED", "SENDING")
    )
    if message is None:
        return Hop(
            "",
            False,
            f"the message is still waiting after {run.target.wait_seconds:.0f} s",
            "the send-messages queues must not be paused and must reach send_message's run.app URL with an OIDC "
            "token of ese-tasks-invoker: `gcloud tasks queues list` (send-messages, send-messages-1, ...), "
            "send_message's logs",
        )
    if message["status"] in FINAL_REFUSALS:
        reason = message.get("status_reason") or f"error {message.get('error_code')}"
        fix = (
            "outside WhatsApp's 24-hour window a template needs an approved content_sid: text the sender from "
            "the test phone first, or pass --content-sid"
            if "24" in str(reason) or "window" in str(reason)
            else "see the reason; Twilio's error codes are listed at https://www.twilio.com/docs/api/errors"
        )
        return Hop("", False, f"message {message['status']}: {reason}", fix)
    return Hop("", True, f"Twilio accepted it ({message['provider_sid']})")


def _callback(run: Run, api: Api) -> Hop:
    message = _wait_for_message(run, api, lambda m: m is not None and m["status"] in SENT_OR_BEYOND)
    if message is None:
        return Hop(
            "",
            False,
            f"no status callback moved the message within {run.target.wait_seconds:.0f} s",
            "Twilio calls the StatusCallback it was given (STATUS_WEBHOOK_URL with the message id): check that "
            "URL and the webhook's signature check (TWILIO_AUTH_TOKEN), and status_webhook's logs",
        )
    return Hop("", True, f"status {message['status']} from Twilio's callback")


def _wait_for_message(
    run: Run, api: Api, done: Callable[[dict[str, Any] | None], bool]
) -> dict[str, Any] | None:
    deadline = time.monotonic() + run.target.wait_seconds
    while True:
        items = api.call("GET", "/v1/messages", params={"campaign_id": run.campaign_id}).json()["items"]
        run.message = items[0] if items else None
        if done(run.message):
            return run.message
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def _clean_up(run: Run, api: Api) -> None:
    """Leave the test number as it was found: off the smoke topic. The campaign stays, as a record."""
    with contextlib.suppress(requests.RequestException):
        api.call("DELETE", f"/v1/users/{run.target.to}/subscriptions/{SMOKE_TOPIC}")


# --- targets ---


def local_target(state_dir: Path, to: str = "", wait: float = 90.0) -> Target:
    """`make dev`'s stack, through its front end: the settings it wrote to stack.env."""
    from infra.local.scheduler import local_scheduler
    from infra.local.stack_env import read_env_file

    env_file = state_dir / "stack.env"
    if not env_file.exists():
        raise SystemExit(f"{env_file} not found: start the local stack first (make dev)")
    env = read_env_file(env_file)
    # The front end serves https with the local CA: trust it as the stack's own clients do.
    os.environ["REQUESTS_CA_BUNDLE"] = env["REQUESTS_CA_BUNDLE"]

    def opt_in(phone: str) -> None:
        """START from the phone, as Twilio would post it: through the front end to inbound_webhook."""
        answer = requests.post(
            env["TWILIO_API_URL"] + "/_emulator/inbound", json={"from": phone, "body": "START"}, timeout=30
        )
        answer.raise_for_status()
        if answer.json()["status"] != 200:
            raise requests.HTTPError(f"inbound_webhook answered the START with {answer.json()}")

    return Target(
        name="local stack",
        api_url=env["API_URL"],
        status_webhook_url=env["STATUS_WEBHOOK_URL"],
        api_token=env["API_TOKEN"],
        twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
        twilio_account_sid=env["TWILIO_ACCOUNT_SID"],
        to=to or LOCAL_TEST_NUMBER,
        force_tick=local_scheduler(env).tick_once,
        opt_in=opt_in,
        wait_seconds=wait,
    )


def deployed_target(
    outputs: Mapping[str, Any], args: argparse.Namespace, environ: Mapping[str, str]
) -> Target:
    """From terraform outputs (or the same values given as flags); secrets from the environment or
    Secret Manager."""

    def value(name: str) -> str:
        flag = getattr(args, name, None)
        found = flag or (outputs.get(name) or {}).get("value")
        if not found:
            raise SystemExit(
                f"missing {name}: run from a terraform workspace with outputs, or pass --{name.replace('_', '-')}"
            )
        return str(found)

    secrets_by_key = (outputs.get("operator_secrets") or {}).get("value") or {}
    region, job = value("region"), value("scheduler_job")

    def force_tick() -> None:
        _gcloud(["scheduler", "jobs", "run", job, "--location", region])

    def secret(key: str) -> str:
        if environ.get(key):
            return environ[key]
        name = secrets_by_key.get(key) or f"ese-{key.lower().replace('_', '-')}"
        return _gcloud(["secrets", "versions", "access", "latest", "--secret", name]).split(",")[0].strip()

    return Target(
        name="deployment",
        api_url=value("api_url"),
        status_webhook_url=value("status_webhook_url"),
        api_token=environ.get("API_TOKEN") or secret("API_TOKENS"),
        twilio_auth_token=secret("TWILIO_AUTH_TOKEN"),
        # Only part of a realistic callback: the webhook checks the signature, not this field.
        twilio_account_sid=environ.get("TWILIO_ACCOUNT_SID", "AC" + "0" * 32),
        to=args.to,
        force_tick=force_tick,
        content_sid=args.content_sid,
        wait_seconds=args.wait,
    )


def terraform_outputs(directory: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["terraform", f"-chdir={directory}", "output", "-json"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"terraform output failed (pass the URLs as flags instead):\n{done.stderr}")
    outputs: dict[str, Any] = json.loads(done.stdout)
    return outputs


def _gcloud(argv: Sequence[str]) -> str:
    done = subprocess.run(["gcloud", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"gcloud {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m infra.deploy.smoke",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--local", action="store_true", help="against `make dev` (its stack.env)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="the local stack's state dir")
    parser.add_argument("--to", default="", help="the test number (E.164) that receives one real message")
    parser.add_argument(
        "--content-sid",
        help="an approved WhatsApp template (HX...), if the number has not texted the sender in 24 h",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask before sending the real message")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds each hop may take")
    parser.add_argument("--terraform-dir", type=Path, default=ROOT / "infra" / "terraform")
    parser.add_argument(
        "--outputs-json", type=Path, help="terraform output -json, saved (instead of running terraform)"
    )
    for name in ("api_url", "status_webhook_url", "region", "scheduler_job"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name)
    args = parser.parse_args(argv)
    if args.local:
        target = local_target(args.state_dir, args.to, args.wait)
    else:
        if not args.to:
            parser.error("--to is required for a deployment: the number that receives the test message")
        flags = (args.api_url, args.status_webhook_url, args.region, args.scheduler_job)
        outputs: dict[str, Any] = {}
        if args.outputs_json:
            outputs = json.loads(args.outputs_json.read_text())
        elif not all(flags):
            outputs = terraform_outputs(args.terraform_dir)
        target = deployed_target(outputs, args, environ)
        if not args.yes:
            answer = input(f"This sends one real WhatsApp message to {target.to}. Continue? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("not sent.")
                return 1
    print(f"smoke test of the {target.name}: {target.api_url}")
    run = run_smoke(target)
    print("all hops passed." if run.ok else "some hops failed: see the likely fixes above.")
    return 0 if run.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
