"""One typed settings object, read from the environment once per instance.

In production every secret (Twilio auth token, API tokens, DB password) arrives as an environment
variable that Cloud Functions fills from Secret Manager, so reading the environment covers both.
Secrets are `SecretStr`, so they never appear in a repr or a log line by accident.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.quiet_hours import QuietHours, parse_window

GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_OIDC_ISSUER = "https://accounts.google.com"
MIN_API_TOKEN_BYTES = 32


class Settings(BaseSettings):
    # A refused setting's error never echoes what was given: it may be a token or a password.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # --- database: DATABASE_URL locally, the Cloud SQL connector in production ---
    database_url: SecretStr | None = None
    instance_connection_name: str | None = None
    db_user: str = "ese"
    db_password: SecretStr | None = None
    db_name: str = "ese"
    db_iam_auth: bool = False
    # What the deployment gives the instance (infra/terraform/database.tf: a public IP with no authorised
    # networks, reachable only through the connector's mutual TLS), so `make migrate` needs no override.
    db_ip_type: Literal["public", "private", "psc"] = "public"
    # Pool per instance: deployed max_instances x (pool + overflow) must stay below max_connections.
    db_pool_size: int = Field(default=5, ge=1, le=50)
    db_max_overflow: int = Field(default=2, ge=0, le=50)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests one process serves at once: gunicorn's threads, from the THREADS that functions-framework
    # reads too. Each may hold a connection, so the pool keeps that many (within the budget above).
    threads: int = Field(default=1, ge=1, le=1000)

    # --- domain defaults ---
    default_region: str = Field(default="US", min_length=2, max_length=2)
    sender_rate_limit_per_second: int = Field(default=80, ge=1, le=500)
    fanout_page_size: int = Field(default=500, ge=1, le=10_000)
    fanout_page_max_age_seconds: int = Field(default=6 * 3600, ge=60)
    # Named Cloud Tasks are created from a small pool: one RPC each, so fan-out is not serialized on them.
    fanout_task_workers: int = Field(default=16, ge=1, le=64)
    # Quiet hours a campaign gets when it is created without any (in each recipient's timezone): "22:00-08:00"
    # (HH:MM-HH:MM, may cross midnight), or "off" for none. Explicit null on a campaign turns them off.
    # (docs/architecture.md, "Domain rules")
    default_quiet_hours: str = "22:00-08:00"
    # Seconds to wait before each retry of a transient send failure; after the last, the message FAILED.
    # A comma-separated list so e2e tests can use "1,2,3" instead of the default 1, 5, 15 minutes
    # (docs/architecture.md, "Retries and Twilio errors").
    retry_delays_seconds: str = Field(default="60,300,900", pattern=r"^\s*\d+(\s*,\s*\d+)*\s*$")
    # Throughput errors (63017/63018/63038) try again this much later without using a retry.
    throughput_defer_seconds: int = Field(default=10, ge=1, le=3600)
    # Sends are spaced (1 + margin) / rate apart, so a 1-second window can only overflow if one send reaches
    # Twilio more than `margin` seconds later, relative to another, than its slot: 20 ms at the default, where
    # make bench measured a p99 of ~4 ms from slot to Twilio. 2% lets an 80/s sender average over 78/s;
    # 2.5% capped it at 78.05, so a single stall put it under.
    rate_safety_margin: float = Field(default=0.02, ge=0.0, le=0.5)
    # A send whose rate-limit slot is further ahead than this is rescheduled, not held in a sleeping request.
    send_max_wait_seconds: float = Field(default=1.0, gt=0, le=10)

    # --- Twilio ---
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    # Unset in production (the SDK's own https://api.twilio.com); the local Twilio emulator otherwise.
    twilio_api_url: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    # Per request (connect, then each read). Twilio answers a create in well under a second; a send whose
    # answer takes longer is given up as AMBIGUOUS and settled by reconciliation, so one slow answer holds
    # a sender thread (and the recipient's send lock, which a STOP waits on) for this long at most.
    twilio_timeout_seconds: float = Field(default=4.0, gt=0, le=60)

    # --- the sweeper (every scheduler tick): when what a crash or an outage left behind is repaired ---
    # AMBIGUOUS sends are looked up at Twilio this long after their claim (Twilio's list may lag a little).
    reconcile_after_seconds: int = Field(default=120, ge=1)
    # ACCEPTED/SENT messages nothing moved for this long have lost their callbacks: fetched by SID.
    stale_status_after_seconds: int = Field(default=900, ge=1)
    # QUEUED messages this far past their send time: their task is looked up, and re-created if gone.
    task_overdue_after_seconds: int = Field(default=300, ge=1)
    # Pages published this long ago and not fanned out are published again. Longer than Pub/Sub's own
    # redelivery (10 attempts, backoff up to 600 s) would take, which it leaves first to try.
    page_overdue_after_seconds: int = Field(default=900, ge=1)
    # At most this many of each kind per tick, so a tick stays well inside trigger_campaign's timeout.
    sweep_limit: int = Field(default=1000, ge=1, le=100_000)
    # The health report's database check warns when a round trip takes this long.
    health_db_warning_ms: float = Field(default=100.0, gt=0)
    # --- the health report's other thresholds (docs/architecture.md, "Health checks") ---
    # The send queue: its oldest waiting task this far past its schedule time warns, then fails (the queue
    # is behind: rate-limited, paused, or its target failing). A paused or disabled queue fails at once.
    health_queue_overdue_warning_seconds: int = Field(default=300, ge=1)
    health_queue_overdue_failing_seconds: int = Field(default=1800, ge=1)
    # Messages stuck past their expected time: QUEUED this long after their send time, ACCEPTED this long
    # without any callback, AMBIGUOUS this long after their claim.
    health_queued_overdue_seconds: int = Field(default=900, ge=1)
    health_accepted_silent_seconds: int = Field(default=3600, ge=1)
    health_ambiguous_overdue_seconds: int = Field(default=900, ge=1)
    # The webhooks' refusals in the last hour, as a share of their requests: warning, failing; below the
    # minimum count nothing is judged (one forged request from a scanner is not an incident).
    health_webhook_error_warning_percent: float = Field(default=5.0, gt=0, le=100)
    health_webhook_error_failing_percent: float = Field(default=25.0, gt=0, le=100)
    health_webhook_error_min_count: int = Field(default=5, ge=1)
    # Dead-lettered pages received in this window warn.
    health_dead_letter_window_hours: int = Field(default=24, ge=1)
    # How many dead letters one scheduler tick drains from the hold subscription.
    dead_letter_drain_limit: int = Field(default=100, ge=1, le=1000)

    # --- the public URLs Twilio and Cloud Tasks call: signatures and OIDC audiences are checked
    # against these, never against request.url, which is not what the caller saw behind Google's front end.
    inbound_webhook_url: str | None = None
    status_webhook_url: str | None = None
    send_message_url: str | None = None
    trigger_campaign_url: str | None = None
    fanout_recipients_url: str | None = None
    # The operator API and dashboard: the origin browsers send (the dashboard's CSRF origin check).
    api_url: str | None = None

    # --- operator API ---
    # Comma-separated list so tokens can be rotated without downtime.
    api_tokens: SecretStr | None = None

    # --- Google Cloud ---
    gcp_project: str = "local-project"
    gcp_region: str = "us-central1"
    pubsub_topic: str = "campaign-recipients"
    # Where Pub/Sub parks the pages it gave up on (infra/terraform/pubsub.tf); unset: `<topic>-dead-letter-hold`.
    pubsub_dead_letter_subscription: str | None = None
    # The send queues: TASKS_QUEUE is the first one's name, and TASKS_QUEUE_COUNT queues share the sends
    # (`<name>`, `<name>-1`, ... `<name>-<count-1>`; shared.adapters.tasks.send_queue_names), so a pool of
    # senders can dispatch past one queue's 500/s (docs/architecture.md, "Send queues").
    tasks_queue: str = "send-messages"
    tasks_queue_count: int = Field(default=1, ge=1, le=64)
    tasks_service_account_email: str | None = None
    cloud_tasks_emulator_host: str | None = None
    # Where signed ID tokens are verified (Google's certs in production, the emulator's locally), who issues
    # them, and who may call this function (terraform sets it per function from its invokers): the
    # machine-called functions refuse everyone while it is unset.
    oidc_certs_url: str = GOOGLE_OIDC_CERTS_URL
    oidc_issuer: str = GOOGLE_OIDC_ISSUER
    oidc_allowed_emails: str | None = None

    # --- replies to consent keywords (texts are configurable per deployment) ---
    stop_reply_text: str = (
        "You have been unsubscribed and will receive no further messages. Reply START to resubscribe."
    )
    start_reply_text: str = "You are subscribed again. Reply STOP to unsubscribe at any time."
    help_reply_text: str = "Reply STOP to unsubscribe or START to resubscribe."
    auto_reply_text: str | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _pg8000_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("postgresql+pg8000://"):
            raise ValueError("DATABASE_URL must start with postgresql+pg8000://")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # A bearer token is the whole of the API's and the dashboard's authentication: 32 random bytes
        # (256 bits) cannot be guessed at any rate a throttle allows; a short one can.
        tokens = [] if value is None else _split_tokens(value)
        for position, token in enumerate(tokens, start=1):
            size = len(token.encode())
            if size < MIN_API_TOKEN_BYTES:
                raise ValueError(
                    f"API_TOKENS: token {position} of {len(tokens)} is {size} bytes; each must be at least "
                    f"{MIN_API_TOKEN_BYTES} (make one with: python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
        return value

    @field_validator("default_quiet_hours")
    @classmethod
    def _quiet_hours_window(cls, value: str) -> str:
        try:
            parse_window(value)
        except ValueError as exc:
            raise ValueError(f"DEFAULT_QUIET_HOURS {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        if self.database_url is None and self.instance_connection_name is None:
            # Allowed at construction (tools that need no DB), refused when an engine is built.
            return self
        if self.database_url is not None and self.instance_connection_name is not None:
            raise ValueError("set DATABASE_URL or INSTANCE_CONNECTION_NAME, not both")
        return self

    @property
    def api_token_list(self) -> list[str]:
        return [] if self.api_tokens is None else _split_tokens(self.api_tokens)

    @model_validator(mode="after")
    def _warning_before_failing(self) -> Settings:
        pairs = (
            (
                "HEALTH_QUEUE_OVERDUE",
                self.health_queue_overdue_warning_seconds,
                self.health_queue_overdue_failing_seconds,
            ),
            (
                "HEALTH_WEBHOOK_ERROR",
                self.health_webhook_error_warning_percent,
                self.health_webhook_error_failing_percent,
            ),
        )
        for name, warning, failing in pairs:
            if warning > failing:
                raise ValueError(f"{name}: the warning threshold must not exceed the failing one")
        return self

    @property
    def dead_letter_subscription(self) -> str:
        return self.pubsub_dead_letter_subscription or f"{self.pubsub_topic}-dead-letter-hold"

    @property
    def fanout_page_max_age(self) -> timedelta:
        return timedelta(seconds=self.fanout_page_max_age_seconds)

    @property
    def default_quiet_hours_window(self) -> QuietHours | None:
        return parse_window(self.default_quiet_hours)

    @property
    def retry_delays(self) -> tuple[timedelta, ...]:
        return tuple(timedelta(seconds=int(part)) for part in self.retry_delays_seconds.split(","))


def _split_tokens(tokens: SecretStr) -> list[str]:
    return [t.strip() for t in tokens.get_secret_value().split(",") if t.strip()]


_settings: Settings | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def override_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests), or pass None so the environment is read again."""
    global _settings
    _settings = settings
