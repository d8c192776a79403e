"""send_message driven at chosen instants: real PostgreSQL, the Twilio emulator through the real SDK, a
clock the test sets and a recording stand-in for Cloud Tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.twilio_client import make_twilio_client
from shared.adapters.twilio_send import TwilioMessageSender
from shared.clock import FixedClock
from shared.db.models import AuditEvent, Message
from shared.db.unit_of_work import UnitOfWork
from shared.outcome import Result
from shared.services.send_config import SendConfig
from shared.services.sender import send_message
from tests.integration.pipeline_support import RecordingTasks
from tests.seeding import T0

SENDER = "whatsapp:+14155238886"
CONTENT_SID = "HX" + "ab" * 16
CONFIG = SendConfig(
    sender_id=SENDER,
    sender_rate=80,
    rate_margin=0.025,
    max_wait=timedelta(seconds=1),
    retry_delays=(timedelta(seconds=60), timedelta(seconds=300), timedelta(seconds=900)),
    throughput_defer=timedelta(seconds=10),
    ambiguous_after=timedelta(seconds=15),
    status_callback_base="http://127.0.0.1:9/status_webhook",
)


class Harness:
    def __init__(self, engine: Engine, twilio: TwilioEmulator, timeout: float = 5.0) -> None:
        self.engine, self.twilio = engine, twilio
        self.clock = FixedClock(T0)
        self.tasks = RecordingTasks()
        self.slept: list[float] = []
        self.sender = twilio_sender(twilio.account_sid, twilio.auth_token, twilio.base_url, timeout)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))

    def send(self, message_id: int, generation: int = 0) -> Result:
        return send_message(
            UnitOfWork(self.engine),
            self.sender,
            self.tasks,
            self.clock,
            self.sleep,
            CONFIG,
            message_id,
            generation,
        )

    def message(self, message_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(Message).where(Message.id == message_id)).one()

    def audit_kinds(self, message_id: int) -> list[str]:
        with self.engine.connect() as conn:
            statement = (
                select(AuditEvent.kind).where(AuditEvent.message_id == message_id).order_by(AuditEvent.id)
            )
            return list(conn.execute(statement).scalars())


def twilio_sender(account_sid: str, auth_token: str, api_url: str, timeout: float) -> TwilioMessageSender:
    return TwilioMessageSender(make_twilio_client(account_sid, auth_token, api_url, timeout), SENDER, None)
