"""The settings every local function receives, also written to `.local/stack.env` for tools and tests.

Secrets (the API token, the emulator's Twilio auth token) are fresh random values on every start unless
the environment sets them, so nothing guessable is ever listening, even on loopback.

Real Twilio instead of the emulator: when the environment holds a real account (TWILIO_ACCOUNT_SID
starting with AC, TWILIO_AUTH_TOKEN), a sender (TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID) and public
webhook URLs (INBOUND_WEBHOOK_URL and STATUS_WEBHOOK_URL, or PUBLIC_BASE_URL, which then serves
/inbound_webhook and /status_webhook), the stack starts no Twilio emulator and passes those values
through unchanged, with TWILIO_API_URL unset so the SDK talks to api.twilio.com. The tunnel behind the
public URLs must forward to the two webhook functions' own ports, which `make dev` prints: the tunnel is
then the TLS-terminating front end for those two.

Every other public URL is the front-end emulator's (infra/local/front_end): https on 127.0.0.1, one port
per function, as each deployed function is a service with an HTTPS host of its own. Tools trust its
certificate through SSL_CERT_FILE / REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, which name the local CA's bundle.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.front_end.table import EntryPoint, invoker_emails
from shared.config import Settings

# The sender of Twilio's WhatsApp sandbox, which the emulator also uses.
EMULATOR_SENDER = "whatsapp:+14155238886"
REQUIRED_KEYS = (
    "DATABASE_URL",
    "PUBSUB_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
    "GCP_PROJECT",
    "GCP_REGION",
    "PUBSUB_TOPIC",
    "TASKS_QUEUE",
    "TASKS_QUEUE_COUNT",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "API_URL",
    "API_TOKENS",
    "API_TOKEN",
    "DASHBOARD_URL",
    "INBOUND_WEBHOOK_URL",
    "STATUS_WEBHOOK_URL",
    "TRIGGER_CAMPAIGN_URL",
    "SEND_MESSAGE_URL",
    "FANOUT_RECIPIENTS_URL",
    "OIDC_CERTS_URL",
    "OIDC_ISSUER",
    "TASKS_SERVICE_ACCOUNT_EMAIL",
    "SCHEDULER_SERVICE_ACCOUNT_EMAIL",
    "SENDER_RATE_LIMIT_PER_SECOND",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
)
# Keys the stack decides; a value inherited from the developer's shell must not leak past them.
MANAGED_KEYS = (
    *REQUIRED_KEYS,
    "TWILIO_API_URL",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "OIDC_ALLOWED_EMAILS",
    "PUBSUB_PUSH_SERVICE_ACCOUNT_EMAIL",
    "CURL_CA_BUNDLE",
)


@dataclass(frozen=True)
class StackAddresses:
    database_url: str
    pubsub_port: int
    tasks_port: int
    oidc_certs_url: str
    twilio_port: int | None  # None: real Twilio
    function_ports: Mapping[str, int]  # each function's own server (behind the front end)
    front_end_ports: Mapping[str, int]  # each function's public HTTPS port
    ca_bundle: str  # the public roots plus the local CA (infra/local/local_ca.py)


def uses_real_twilio(environ: Mapping[str, str]) -> bool:
    has_account = environ.get("TWILIO_ACCOUNT_SID", "").startswith("AC") and bool(
        environ.get("TWILIO_AUTH_TOKEN")
    )
    has_sender = bool(environ.get("TWILIO_FROM") or environ.get("TWILIO_MESSAGING_SERVICE_SID"))
    has_webhooks = bool(environ.get("PUBLIC_BASE_URL")) or bool(
        environ.get("INBOUND_WEBHOOK_URL") and environ.get("STATUS_WEBHOOK_URL")
    )
    return has_account and has_sender and has_webhooks


def public_url(port: int) -> str:
    """A function's URL at the front end: its own HTTPS origin, no path, as a run.app URL has."""
    return f"https://127.0.0.1:{port}"


def build_env(addresses: StackAddresses, environ: Mapping[str, str]) -> dict[str, str]:
    ports = addresses.front_end_ports
    project = environ.get("GCP_PROJECT") or str(Settings.model_fields["gcp_project"].default)
    api_tokens = environ.get("API_TOKENS") or secrets.token_urlsafe(32)
    api_url = public_url(ports["api"])
    env = {
        "DATABASE_URL": addresses.database_url,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{addresses.pubsub_port}",
        "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{addresses.tasks_port}",
        "GCP_PROJECT": project,
        "GCP_REGION": environ.get("GCP_REGION") or str(Settings.model_fields["gcp_region"].default),
        "PUBSUB_TOPIC": environ.get("PUBSUB_TOPIC") or str(Settings.model_fields["pubsub_topic"].default),
        "TASKS_QUEUE": environ.get("TASKS_QUEUE") or str(Settings.model_fields["tasks_queue"].default),
        "TASKS_QUEUE_COUNT": environ.get("TASKS_QUEUE_COUNT")
        or str(Settings.model_fields["tasks_queue_count"].default),
        "API_URL": api_url,
        "API_TOKENS": api_tokens,
        "API_TOKEN": api_tokens.split(",")[0].strip(),
        "DASHBOARD_URL": f"{api_url}/ui/",
        "TRIGGER_CAMPAIGN_URL": public_url(ports["trigger_campaign"]),
        "SEND_MESSAGE_URL": public_url(ports["send_message"]),
        "FANOUT_RECIPIENTS_URL": public_url(ports["fanout_recipients"]),
        "OIDC_CERTS_URL": addresses.oidc_certs_url,
        # The Cloud Tasks emulator's issuer signs every local token (its base URL, as Google's is its own).
        "OIDC_ISSUER": addresses.oidc_certs_url.rsplit("/", 1)[0],
        # The identities infra/terraform/identities.tf creates (name prefix "ese").
        "TASKS_SERVICE_ACCOUNT_EMAIL": f"ese-tasks-invoker@{project}.iam.gserviceaccount.com",
        "SCHEDULER_SERVICE_ACCOUNT_EMAIL": f"ese-scheduler@{project}.iam.gserviceaccount.com",
        "PUBSUB_PUSH_SERVICE_ACCOUNT_EMAIL": f"ese-pubsub-push@{project}.iam.gserviceaccount.com",
        "SENDER_RATE_LIMIT_PER_SECOND": environ.get("SENDER_RATE_LIMIT_PER_SECOND")
        or str(Settings.model_fields["sender_rate_limit_per_second"].default),
        # Every client in the stack (and a tool reading this file) trusts the front end's certificate.
        "SSL_CERT_FILE": addresses.ca_bundle,
        "REQUESTS_CA_BUNDLE": addresses.ca_bundle,
        "CURL_CA_BUNDLE": addresses.ca_bundle,
    }
    return env | _twilio_env(addresses, environ)


def caller_env(entry: EntryPoint, env: Mapping[str, str]) -> dict[str, str]:
    """OIDC_ALLOWED_EMAILS for a function only identities may call: its invokers in the table terraform
    grants roles/run.invoker from (infra/terraform/entry_points.json), as terraform sets it."""
    emails = invoker_emails(entry, env["GCP_PROJECT"])
    return {"OIDC_ALLOWED_EMAILS": ",".join(emails)} if emails else {}


def _twilio_env(addresses: StackAddresses, environ: Mapping[str, str]) -> dict[str, str]:
    if addresses.twilio_port is None:
        base = environ.get("PUBLIC_BASE_URL", "").rstrip("/")
        passed = {
            key: environ[key]
            for key in (
                "TWILIO_ACCOUNT_SID",
                "TWILIO_AUTH_TOKEN",
                "TWILIO_FROM",
                "TWILIO_MESSAGING_SERVICE_SID",
            )
            if environ.get(key)
        }
        return passed | {
            "INBOUND_WEBHOOK_URL": environ.get("INBOUND_WEBHOOK_URL") or f"{base}/inbound_webhook",
            "STATUS_WEBHOOK_URL": environ.get("STATUS_WEBHOOK_URL") or f"{base}/status_webhook",
        }
    return {
        "TWILIO_API_URL": f"http://127.0.0.1:{addresses.twilio_port}",
        "TWILIO_ACCOUNT_SID": environ.get("TWILIO_ACCOUNT_SID") or "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": environ.get("TWILIO_AUTH_TOKEN") or secrets.token_hex(16),
        "TWILIO_FROM": environ.get("TWILIO_FROM") or EMULATOR_SENDER,
        "INBOUND_WEBHOOK_URL": public_url(addresses.front_end_ports["inbound_webhook"]),
        "STATUS_WEBHOOK_URL": public_url(addresses.front_end_ports["status_webhook"]),
    }


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items()))
    tmp.chmod(0o600)  # it holds the API token and the Twilio auth token
    tmp.replace(path)  # readers polling for the file never see half of it


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env
