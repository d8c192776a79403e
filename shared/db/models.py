"""The data model. PostgreSQL is the only source of truth, so every rule that can live in the database
does: E.164 and enum CHECKs, foreign keys, and the unique keys that make each handler idempotent.

The initial Alembic migration creates exactly these tables; `tests/integration/test_migrations.py`
checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.domain.enums import (
    CampaignStatus,
    ConsentState,
    FrequencyCapPolicy,
    MessageStatus,
    QuietHoursSource,
    SenderState,
)
from shared.domain.templates import LOCALE_SQL_PATTERN, Channel, TemplateSendOutcome

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# A user's own STOP in the audit trail (a keyword, or Twilio's opt-out handling; not an operator or an
# import): the campaign analytics attribute these to the campaign that preceded them.
USER_STOP_WHERE = (
    "kind = 'consent.changed' AND (detail ->> 'to') = 'STOP' "
    "AND source IN ('inbound_keyword', 'twilio_opt_out_type')"
)


def _in(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _e164(column: str) -> str:
    return f"{column} ~ '{E164_PATTERN}'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_e164("phone_e164"), name="phone_e164"),
        CheckConstraint(_in("consent_state", ConsentState), name="consent_state"),
        # Segments filter on arbitrary attributes (@>, ?, ->>): jsonb_ops GIN serves @> and ?.
        Index(None, "attributes", postgresql_using="gin"),
        # The audience query always filters consent first.
        Index(None, "consent_state"),
    )

    phone_e164: Mapped[str] = mapped_column(Text, primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # New users are not opted in: consent must be given (START, import with consent, consent API).
    consent_state: Mapped[str] = mapped_column(Text, server_default=ConsentState.OPT_OUT.value)
    consent_updated_at: Mapped[datetime | None]
    # Opens WhatsApp's 24-hour customer-care window for free-form messages.
    last_inbound_at: Mapped[datetime | None]


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("length(topic) BETWEEN 1 AND 100", name="topic_length"),
        # A campaign with a topic joins from the topic side.
        Index(None, "topic", "user_phone"),
    )

    user_phone: Mapped[str] = mapped_column(
        Text, ForeignKey("users.phone_e164", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Template(TimestampMixin, Base):
    __tablename__ = "templates"
    __table_args__ = (
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("length(content) BETWEEN 1 AND 4096", name="content_length"),
        CheckConstraint("content_sid IS NULL OR content_sid ~ '^HX[0-9a-fA-F]{32}$'", name="content_sid"),
        CheckConstraint(f"locale IS NULL OR locale ~ '{LOCALE_SQL_PATTERN}'", name="locale"),
        CheckConstraint(_in("channel", Channel), name="channel"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    content: Mapped[str] = mapped_column(Text)
    # An approved WhatsApp Content template, required outside the 24-hour window.
    content_sid: Mapped[str | None] = mapped_column(Text)
    # ContentVariables mapping: {"1": "first_name", "2": "order_id"} -> values rendered per recipient.
    content_variables: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # A language tag (es, es-PE, pt-BR), for the operator; NULL when not said.
    locale: Mapped[str | None] = mapped_column(Text)
    # Only whatsapp: the send path cannot send anything else (shared.domain.templates.Channel).
    channel: Mapped[str] = mapped_column(Text, server_default=Channel.WHATSAPP.value)


class TemplateTestSend(Base):
    """One template sent to one opted-in person by an operator, outside any campaign: what was sent and
    what Twilio answered. Also in audit_events (template.test_send)."""

    __tablename__ = "template_test_sends"
    __table_args__ = (
        CheckConstraint(_e164("recipient_phone"), name="recipient_phone"),
        CheckConstraint(_in("outcome", TemplateSendOutcome), name="outcome"),
        Index(None, "template_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    template_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("templates.id", ondelete="CASCADE"))
    recipient_phone: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    content_sid: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    provider_sid: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Who sent it: the door (api, dashboard) and a fingerprint of the API token used, never the token.
    operator: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Segment(TimestampMixin, Base):
    __tablename__ = "segments"
    __table_args__ = (CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    definition: Mapped[dict[str, Any]]


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("status", CampaignStatus), name="status"),
        CheckConstraint("rate_limit_per_second BETWEEN 1 AND 500", name="rate_limit"),
        CheckConstraint(
            "(quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)", name="quiet_hours_both_or_neither"
        ),
        CheckConstraint(_in("quiet_hours_source", QuietHoursSource), name="quiet_hours_source"),
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint(_in("frequency_cap_policy", FrequencyCapPolicy), name="frequency_cap_policy"),
        # The scheduler's "which campaigns are due" query.
        Index(None, "status", "schedule_time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="RESTRICT"))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"))
    topic: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=CampaignStatus.DRAFT.value)
    # Where a paused campaign returns to on resume (READY or RUNNING).
    paused_from: Mapped[str | None] = mapped_column(Text)
    schedule_time: Mapped[datetime | None]
    rate_limit_per_second: Mapped[int] = mapped_column(Integer, server_default=text("80"))
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    # Whether the request gave the quiet hours (or null: none) or DEFAULT_QUIET_HOURS filled them in.
    quiet_hours_source: Mapped[str] = mapped_column(Text, server_default=QuietHoursSource.EXPLICIT.value)
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Where fan-out plans the next page's first send (spacing by the campaign's rate). Only an estimate:
    # the rate limiter admits each send; the cursor never says what was sent (the ledger does).
    plan_cursor: Mapped[datetime | None]
    # The pool of senders it goes out over (senders.pool); NULL: the configured sender (TWILIO_FROM or the
    # Messaging Service) alone, as before pools existed.
    sender_pool: Mapped[str | None] = mapped_column(Text)
    # Exempt from the per-user frequency caps (an order update, not marketing).
    transactional: Mapped[bool] = mapped_column(server_default=text("false"))
    # What a message the caps hold back becomes: deferred until they allow it, or skipped.
    frequency_cap_policy: Mapped[str] = mapped_column(Text, server_default=FrequencyCapPolicy.DEFER.value)
    # No message is sent after this: a cap deferral that would end later skips the message instead.
    ends_at: Mapped[datetime | None]


class Message(TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Exactly one message per recipient per campaign, whatever is redelivered.
        UniqueConstraint("campaign_id", "recipient_phone"),
        CheckConstraint(_in("status", MessageStatus), name="status"),
        CheckConstraint(_e164("recipient_phone"), name="recipient_phone"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # Campaign summaries and the "anything still waiting?" completion check.
        Index(None, "campaign_id", "status"),
        # The sweeper's reads on every tick (shared.db.queries.repairs), over the few rows in those states.
        Index(
            "ix_messages_unsettled_claimed_at",
            "status",
            "claimed_at",
            postgresql_where=text("status IN ('SENDING', 'AMBIGUOUS')"),
        ),
        Index(
            "ix_messages_in_flight_updated_at",
            "status",
            "updated_at",
            postgresql_where=text("status IN ('ACCEPTED', 'SENT')"),
        ),
        Index("ix_messages_queued_scheduled_at", "scheduled_at", postgresql_where=text("status = 'QUEUED'")),
        # A campaign's error codes (campaign analytics): only the rows that have one.
        Index(
            "ix_messages_campaign_id_error_code",
            "campaign_id",
            "error_code",
            postgresql_where=text("error_code IS NOT NULL"),
        ),
        # A user's conversation, newest first, and the inbound webhook's "which message does this answer"
        # (shared.db.queries.conversation): coalesce(sent_at, created_at) is a sent message's sent_at.
        Index(
            "ix_messages_recipient_phone_at", "recipient_phone", text("coalesce(sent_at, created_at)"), "id"
        ),
        # A sender's sends of the last minute (its current rate) and its stickiness ("who last wrote to
        # this user"): only pool messages have a sender.
        Index(
            "ix_messages_sender_claimed_at",
            "sender",
            "claimed_at",
            postgresql_where=text("sender IS NOT NULL"),
        ),
        # Campaign analytics at 1M messages (docs/architecture.md, "Analytics at a million messages"): exact
        # percentiles by position and the first and last send, each a short walk of one index (the delivery
        # time's percentiles come from delivery_time_tallies).
        Index(
            "ix_messages_campaign_id_to_read",
            "campaign_id",
            text("(read_at - sent_at)"),
            postgresql_include=["read_at", "sent_at"],
            postgresql_where=text("read_at IS NOT NULL AND sent_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_campaign_id_sent_at",
            "campaign_id",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_campaign_id_rate_limit_wait",
            "campaign_id",
            "rate_limit_wait_seconds",
            postgresql_where=text("rate_limit_deferrals > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    recipient_phone: Mapped[str] = mapped_column(Text, ForeignKey("users.phone_e164", ondelete="RESTRICT"))
    body: Mapped[str | None] = mapped_column(Text)
    content_variables: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(Text, server_default=MessageStatus.QUEUED.value)
    # Why a message was skipped, withheld or failed, in words an operator can act on.
    status_reason: Mapped[str | None] = mapped_column(Text)
    provider_sid: Mapped[str | None] = mapped_column(Text, unique=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error_code: Mapped[int | None] = mapped_column(Integer)
    scheduled_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    # Bumped whenever the message is rescheduled or parked, so a task for an older generation (a
    # duplicate dispatch, a task created before a pause) finds nothing to claim.
    generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Transient send failures retried so far (throughput deferrals and rate-limit waits do not count).
    retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # When send_message claimed it (SENDING), just before its Twilio call: a row SENDING for longer than the
    # Twilio timeout means the sender died between the call and the record; it becomes AMBIGUOUS, and
    # reconciliation asks Twilio whether it got it (never a blind resend).
    claimed_at: Mapped[datetime | None]
    # The send slot the rate limiter reserved for it: a retry of the same task uses it.
    slot_at: Mapped[datetime | None]
    # Times it went back to the queue for a rate slot too far off to wait for in the process, and the
    # seconds those slots were ahead: written by the rescheduling UPDATE itself (campaign analytics).
    rate_limit_deferrals: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rate_limit_wait_seconds: Mapped[float] = mapped_column(Float, server_default=text("0"))
    # The pool sender it goes out from (senders.address), chosen at its first admission and kept (sticky)
    # unless that sender is paused; NULL for a campaign without a pool (the configured sender).
    sender: Mapped[str | None] = mapped_column(Text)
    # Times the per-user frequency caps deferred it (campaign analytics).
    frequency_cap_deferrals: Mapped[int] = mapped_column(Integer, server_default=text("0"))


# Messages counted by what the reports group them by, kept exact by triggers on messages in the writing
# transaction: each write appends its deltas, the scheduler's tick folds them (docs/architecture.md,
# "Analytics at a million messages"; migration 0013 has the triggers). A table, not a mapped class: rows
# are appended and summed, never loaded one by one, and it has no key (no sequence on the send path).
message_tallies = Table(
    "message_tallies",
    Base.metadata,
    Column("campaign_id", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("sender", Text),
    Column("handed", Boolean, nullable=False),  # provider_sid IS NOT NULL
    Column("sent_minute", DateTime(timezone=True)),  # date_trunc('minute', sent_at)
    Column("delivered_minute", DateTime(timezone=True)),
    Column("failed_minute", DateTime(timezone=True)),
    Column("delivered", Boolean, nullable=False),  # delivered_at and sent_at both set
    Column("read", Boolean, nullable=False),  # read_at and sent_at both set
    Column("error_code", Integer),
    Column("cap_skipped", Boolean, nullable=False),  # SKIPPED with status_reason frequency_cap
    Column("rate_limited", Boolean, nullable=False),  # rate_limit_deferrals > 0
    Column("cap_deferred", Boolean, nullable=False),  # frequency_cap_deferrals > 0
    Column("messages", BigInteger, nullable=False),
    Column("rate_limit_deferrals", BigInteger, nullable=False),
    Column("cap_deferrals", BigInteger, nullable=False),
    Column("folded", Boolean, nullable=False, server_default=text("false")),
    Index("ix_message_tallies_campaign_id", "campaign_id"),
    Index("ix_message_tallies_unfolded", "campaign_id", postgresql_where=text("NOT folded")),
)


# Delivered messages counted by their delivery time (delivered_at - sent_at) in whole milliseconds, kept like
# message_tallies (appended deltas, folded by the scheduler's tick; migration 0015 has the triggers): the
# delivery time's percentiles are running sums over it (docs/architecture.md, "Analytics at a million
# messages").
delivery_time_tallies = Table(
    "delivery_time_tallies",
    Base.metadata,
    Column("campaign_id", BigInteger, nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("messages", BigInteger, nullable=False),
    Column("folded", Boolean, nullable=False, server_default=text("false")),
    Index("ix_delivery_time_tallies_campaign_id", "campaign_id"),
    Index("ix_delivery_time_tallies_unfolded", "campaign_id", postgresql_where=text("NOT folded")),
)


class DeliveryReceipt(Base):
    __tablename__ = "delivery_receipts"
    __table_args__ = (
        # Twilio repeats callbacks; one row per (message, status) makes a repeat a no-op.
        UniqueConstraint("message_sid", "message_status"),
        Index(None, "message_id"),
        # The status webhook's successes of the last hour, beside its refusals (webhook_errors).
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Nullable so that a malformed (but signed) callback is still kept for audit.
    message_sid: Mapped[str | None] = mapped_column(Text)
    message_status: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    error_code: Mapped[int | None] = mapped_column(Integer)
    raw_payload: Mapped[dict[str, Any]]
    idempotency_token: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class InboundEvent(Base):
    __tablename__ = "events_inbound"
    __table_args__ = (
        UniqueConstraint("message_sid"),
        CheckConstraint(f"from_phone IS NULL OR {_e164('from_phone')}", name="from_phone"),
        CheckConstraint("channel IS NULL OR channel IN ('whatsapp', 'sms')", name="channel"),
        Index(None, "received_at"),
        # Replies attributed to a campaign (one recipient's inbound messages after a send), and a user's
        # conversation, newest first (keyset on received_at, id).
        Index("ix_events_inbound_from_phone_received_at", "from_phone", "received_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Nullable so that a malformed (but signed) webhook is still kept for audit.
    message_sid: Mapped[str | None] = mapped_column(Text)
    from_phone: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    raw_payload: Mapped[dict[str, Any]]
    idempotency_token: Mapped[str | None] = mapped_column(Text)
    # What we made of it: e.g. consent:STOP, help, none, rejected:<reason>.
    outcome: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Twilio's WhatsApp fields: the sender's WhatsApp id and profile name (None on SMS).
    wa_id: Mapped[str | None] = mapped_column(Text)
    profile_name: Mapped[str | None] = mapped_column(Text)
    # The body trimmed, NFKC-normalised and case-folded (shared.domain.inbound_text), for matching.
    body_normalized: Mapped[str | None] = mapped_column(Text)
    # whatsapp or sms, from the From prefix.
    channel: Mapped[str | None] = mapped_column(Text)
    # The campaign message this answers: the last one sent to the sender within 72 h before it. A plain
    # id, not a foreign key, like the audit trail's: the record outlives a deleted campaign.
    in_reply_to_message_id: Mapped[int | None] = mapped_column(BigInteger)


class AuditEvent(Base):
    """Append-only record of every orchestration decision (a trigger refuses UPDATE and DELETE).

    Ids are plain columns, not foreign keys, so the trail outlives what it describes.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("length(kind) BETWEEN 1 AND 100", name="kind_length"),
        # "Why did this person (not) get this message?" reads by message and by user.
        # Partial: consent changes carry no message or campaign (an import writes one per user), and
        # every read here looks up one message or one campaign, so those rows need not enter these two.
        Index(None, "message_id", postgresql_where=text("message_id IS NOT NULL")),
        Index(None, "user_phone", "occurred_at"),
        Index(None, "campaign_id", "kind", postgresql_where=text("campaign_id IS NOT NULL")),
        # The health view's "repairs in the last hour": the sweeper's few rows, by time.
        Index(
            "ix_audit_events_repairs_occurred_at",
            "occurred_at",
            postgresql_where=text("kind LIKE 'repair.%' OR kind LIKE 'reconcile.%'"),
        ),
        # Users' STOPs by time, for the campaign analytics' opt-outs: a few rows among the trail.
        Index(
            "ix_audit_events_user_stops", "user_phone", "occurred_at", postgresql_where=text(USER_STOP_WHERE)
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    kind: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    user_phone: Mapped[str | None] = mapped_column(Text)
    # Who or what caused it: inbound_keyword, twilio_opt_out_type, api, import, send_error:21610, ...
    source: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class CampaignRecipient(Base):
    """The audience frozen when the campaign starts, so later segment or attribute edits cannot change
    who a running campaign reaches. No foreign keys: a 1M-row freeze must not pay a trigger per row,
    and fan-out joins users anyway (a deleted user simply drops out)."""

    __tablename__ = "campaign_recipients"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    phone: Mapped[str] = mapped_column(Text, primary_key=True)


class CampaignPage(Base):
    """One Pub/Sub page of the frozen audience: a key range of campaign_recipients, fanned out once."""

    __tablename__ = "campaign_pages"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    page_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_phone: Mapped[str] = mapped_column(Text)
    last_phone: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    # Set once the publish was confirmed; a page still NULL is republished by the scheduler's next tick.
    published_at: Mapped[datetime | None]
    fanned_out_at: Mapped[datetime | None]
    # A page delivered after FANOUT_PAGE_MAX_AGE is dropped, not fanned out; the campaign can still end.
    dropped_at: Mapped[datetime | None]


class Sender(TimestampMixin, Base):
    """A WhatsApp sender of a pool: a business number (`whatsapp:+E164`) or a Messaging Service SID, with
    its own rate ceiling (its own key in the slot calendar) and state. Paused by an operator, or by the
    send path when Twilio reports it blocked or rate-limited (paused_by 'twilio', with the error)."""

    __tablename__ = "senders"
    __table_args__ = (
        CheckConstraint(_in("state", SenderState), name="state"),
        CheckConstraint("rate_limit_per_second BETWEEN 1 AND 500", name="rate_limit"),
        CheckConstraint(
            "address ~ '^whatsapp:\\+[1-9][0-9]{6,14}$' OR address ~ '^MG[0-9a-f]{32}$'", name="address"
        ),
        CheckConstraint("length(pool) BETWEEN 1 AND 100", name="pool_length"),
        Index(None, "pool", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(Text, unique=True)
    pool: Mapped[str] = mapped_column(Text)
    rate_limit_per_second: Mapped[int] = mapped_column(Integer, server_default=text("80"))
    state: Mapped[str] = mapped_column(Text, server_default=SenderState.ACTIVE.value)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    # 'operator' or 'twilio' (paused automatically on a sender-level error).
    paused_by: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None]
    last_error_code: Mapped[int | None] = mapped_column(Integer)
    last_error_at: Mapped[datetime | None]


class UserSender(Base):
    """When a user last wrote to one of our senders: WhatsApp's 24-hour service window belongs to the
    (business number, user) pair, and a pool send goes out from the number the user last wrote to."""

    __tablename__ = "user_senders"

    user_phone: Mapped[str] = mapped_column(
        Text, ForeignKey("users.phone_e164", ondelete="CASCADE"), primary_key=True
    )
    sender: Mapped[str] = mapped_column(Text, primary_key=True)
    last_inbound_at: Mapped[datetime]


class SenderPlanCursor(Base):
    """Where fan-out planned a pool campaign's last send from one sender: a pool campaign whose rate is at
    least its senders' summed ceilings plans each sender's messages at that sender's ceiling."""

    __tablename__ = "sender_plan_cursors"

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    sender: Mapped[str] = mapped_column(Text, primary_key=True)
    cursor: Mapped[datetime]


class FrequencyCap(Base):
    """At most `max_messages` marketing messages (campaigns not marked transactional) per user in any
    rolling `window_seconds`, across campaigns. No rows: no caps."""

    __tablename__ = "frequency_caps"
    __table_args__ = (
        CheckConstraint("max_messages BETWEEN 1 AND 1000", name="max_messages"),
        CheckConstraint("window_seconds BETWEEN 3600 AND 31622400", name="window_seconds"),
    )

    window_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_messages: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RateLimiter(Base):
    """GCRA state per key (campaign:<id>, sender:<from>): the theoretical arrival time of the next send.
    A send may start at max(now, tat), which then moves on by the key's spacing."""

    __tablename__ = "rate_limiters"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    tat: Mapped[datetime]


class Heartbeat(Base):
    """When a periodic job last ran and what it did (scheduler_tick: the trigger's run every minute), so
    health checks and `make smoke` can tell a silent job from a working one."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class DashboardSignInAttempts(Base):
    """Sign-in attempts per client in the current window: the throttle on guessing API tokens at the
    dashboard. A success removes its client's row; rows of windows long over are deleted as others arrive."""

    __tablename__ = "dashboard_signin_attempts"
    __table_args__ = (Index(None, "window_started_at"),)

    client: Mapped[str] = mapped_column(Text, primary_key=True)
    window_started_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer)


class DashboardRevokedSession(Base):
    """Dashboard sessions signed out before their cookie expires: the cookie alone would still be valid
    until then. Kept until that expiry, then deleted as later sign-outs arrive."""

    __tablename__ = "dashboard_revoked_sessions"
    __table_args__ = (Index(None, "expires_at"),)

    session_id: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime]


class WebhookError(Base):
    """The Twilio webhooks' refusals, counted per minute, webhook and HTTP status (docs/architecture.md,
    "Health checks"). Only refusals are written: a webhook's success path stays without this write."""

    __tablename__ = "webhook_errors"

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    webhook: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class DeadLetter(Base):
    """A page Pub/Sub gave up delivering to fanout_recipients, drained from the dead-letter hold
    subscription by the scheduler tick: what the operator sees and may replay (the data is the page)."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("pubsub_message_id"), Index(None, "received_at"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pubsub_message_id: Mapped[str] = mapped_column(Text)
    subscription: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    attributes: Mapped[dict[str, Any]]
    published_at: Mapped[datetime | None]
    delivery_attempt: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime]
