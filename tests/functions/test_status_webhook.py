"""status_webhook through functions-framework's HTTP interface, on a real migrated PostgreSQL database."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from infra.local.postgres import free_port
from shared import bootstrap
from shared.adapters.twilio_forms import StatusCallback, status_callback_url
from shared.clock import SystemClock
from shared.config import Settings, override_settings
from shared.db.unit_of_work import UnitOfWork
from shared.outcome import Outcome, Result
from shared.services.delivery_status import record_status_callback
from tests.conftest import make_settings
from tests.functions.twilio_webhook_client import (
    TwilioWebhookClient,
    count_rows,
    fetch_one,
    seed_campaign_message,
)
from tests.resetting_server import resetting_server

PHONE = "+14155550100"


@pytest.fixture
def status(settings: Settings) -> Iterator[TwilioWebhookClient]:
    assert settings.status_webhook_url is not None
    yield TwilioWebhookClient("status_webhook", settings.status_webhook_url)


def seed_message(engine: Engine, status: str = "ACCEPTED", *, with_sid: bool = True) -> tuple[int, str]:
    """(message id, the SID Twilio reports for it), the SID recorded on the row unless `with_sid` is False."""
    sid = "SM" + uuid.uuid4().hex
    return seed_campaign_message(engine, PHONE, status=status, provider_sid=sid if with_sid else None), sid


def callback(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": f"whatsapp:{PHONE}",
        "From": "whatsapp:+14155238886",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def query_for(message_id: int) -> str:
    return status_callback_url("", message_id).lstrip("?")


def message_row(engine: Engine, message_id: int) -> Any:
    return fetch_one(
        engine,
        "SELECT status, provider_sid, error_code, status_reason, sent_at, delivered_at, read_at, failed_at"
        " FROM messages WHERE id = :id",
        id=message_id,
    )


@dataclass(frozen=True)
class Window:
    """When one callback was being handled: the time it records must fall inside."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at <= self.end


def deliver(status: TwilioWebhookClient, message_id: int, params: dict[str, str]) -> Window:
    start = datetime.now(UTC)
    response = status.post(params, query=query_for(message_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    return Window(start, datetime.now(UTC))


# --- the lock ---


def test_forged_missing_and_tampered_signatures_are_refused_and_nothing_is_written(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine)
    params = callback(sid, "delivered")
    query = query_for(message_id)
    forged = status.post(params, query=query, signature=status.signature(params, query, token="guessed"))
    missing = status.post_unsigned(params)
    # Signed for one message, replayed with another message's id in the URL.
    other_url = status.post(
        params, query=query_for(message_id + 1), signature=status.signature(params, query)
    )
    assert [r.status_code for r in (forged, missing, other_url)] == [403, 403, 403]
    assert count_rows(engine, "delivery_receipts") == 0
    assert message_row(engine, message_id).status == "ACCEPTED"


# --- concurrent callbacks of one message (Twilio sends them in parallel) ---


def _record_directly(
    engine: Engine, params: dict[str, str], message_id: int, problem: str | None = None
) -> Result:
    """The service on its own, given the callback as the webhook reads it."""
    error_code = params.get("ErrorCode")
    callback = StatusCallback(
        message_sid=params["MessageSid"],
        message_status=params["MessageStatus"],
        error_code=None if error_code is None else int(error_code),
        message_id=message_id,
        problem=problem,
        raw={**params, "_query": {"message_id": str(message_id)}},
    )
    return record_status_callback(UnitOfWork(engine), callback, idempotency_token=None, clock=SystemClock())


def _report_at_once(
    start: threading.Barrier, engine: Engine, params: dict[str, str], message_id: int
) -> None:
    start.wait()
    _record_directly(engine, params, message_id)


def test_concurrent_callbacks_of_one_message_end_at_the_highest_rank_with_one_receipt_each(
    settings: Settings, engine: Engine
) -> None:
    messages = [seed_message(engine) for _ in range(15)]
    calls = [
        (m, callback(sid, name)) for m, sid in messages for name in ("sent", "delivered", "read", "read")
    ]
    random.Random(7).shuffle(calls)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda call: _record_directly(engine, call[1], call[0]), calls))
    assert sorted(r.reason for r in results) == sorted(["duplicate"] * 15 + ["recorded"] * 45)
    for message_id, _ in messages:
        row = message_row(engine, message_id)
        assert row.status == "READ"
        assert None not in (row.sent_at, row.delivered_at, row.read_at)
    assert count_rows(engine, "delivery_receipts") == 45


def test_racing_failed_and_undelivered_callbacks_audit_the_failure_once(
    settings: Settings, engine: Engine
) -> None:
    # The row lock makes the second callback see the final state the first left; without it both would
    # replace SENT and both would be audited.
    messages = [seed_message(engine, status="SENT") for _ in range(12)]
    for message_id, sid in messages:
        start = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=_report_at_once,
                args=(start, engine, callback(sid, name, ErrorCode="30008"), message_id),
            )
            for name in ("failed", "undelivered")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for message_id, _ in messages:
        assert message_row(engine, message_id).status in ("FAILED", "UNDELIVERED")
        audits = fetch_one(
            engine,
            "SELECT count(*) FROM audit_events WHERE kind = 'message.failed' AND message_id = :m",
            m=message_id,
        )[0]
        assert audits == 1


# --- every order ends in the right state ---

ORDERS = list(itertools.permutations(["queued", "sent", "delivered", "read"]))
# Which callbacks prove each timestamp: a read proves delivery and sending too.
PROVES = {
    "sent_at": {"sent", "delivered", "read"},
    "delivered_at": {"delivered", "read"},
    "read_at": {"read"},
}


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_order_of_queued_sent_delivered_read_ends_read_with_first_proof_timestamps(
    status: TwilioWebhookClient, engine: Engine, order: tuple[str, ...]
) -> None:
    message_id, sid = seed_message(engine, status="SENDING")
    windows = {name: deliver(status, message_id, callback(sid, name)) for name in order}
    row = message_row(engine, message_id)
    assert row.status == "READ"
    for column, proofs in PROVES.items():
        first_proof = next(name for name in order if name in proofs)
        assert getattr(row, column) in windows[first_proof], (column, first_proof)
    assert row.failed_at is None and row.error_code is None


def test_late_sent_callback_does_not_downgrade_delivered(status: TwilioWebhookClient, engine: Engine) -> None:
    message_id, sid = seed_message(engine)
    deliver(status, message_id, callback(sid, "delivered"))
    deliver(status, message_id, callback(sid, "sent"))
    assert message_row(engine, message_id).status == "DELIVERED"


@pytest.mark.parametrize("order", [("sent", "failed"), ("failed", "sent")])
def test_sent_and_failed_in_either_order_end_failed_with_the_error(
    status: TwilioWebhookClient, engine: Engine, order: tuple[str, str]
) -> None:
    message_id, sid = seed_message(engine)
    windows = {name: deliver(status, message_id, callback(sid, name, ErrorCode="30008")) for name in order}
    row = message_row(engine, message_id)
    assert (row.status, row.error_code) == ("FAILED", 30008)
    assert "30008" in row.status_reason
    assert row.failed_at in windows["failed"]
    # Sending is a fact even when reported after the failure.
    assert row.sent_at in windows["sent"]
    assert row.delivered_at is None


def test_a_failure_reported_after_delivery_does_not_undo_it(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine)
    deliver(status, message_id, callback(sid, "delivered"))
    deliver(status, message_id, callback(sid, "undelivered", ErrorCode="30008"))
    row = message_row(engine, message_id)
    assert (row.status, row.error_code) == ("DELIVERED", None)


def test_a_failure_is_recorded_in_the_audit_trail(status: TwilioWebhookClient, engine: Engine) -> None:
    message_id, sid = seed_message(engine, status="SENT")
    deliver(status, message_id, callback(sid, "undelivered", ErrorCode="30003"))
    audit = fetch_one(engine, "SELECT kind, message_id, user_phone, source, detail FROM audit_events")
    assert (audit.kind, audit.message_id, audit.user_phone, audit.source) == (
        "message.failed",
        message_id,
        PHONE,
        "status_callback",
    )
    assert audit.detail["error_code"] == 30003


# --- repeats ---


def test_the_same_callback_delivered_twice_is_one_receipt_and_the_same_state(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine)
    params = callback(sid, "delivered")
    deliver(status, message_id, params)
    first = message_row(engine, message_id)
    response = status.post(params, query=query_for(message_id), idempotency_token="again")
    assert response.status_code == 200
    assert count_rows(engine, "delivery_receipts") == 1
    assert message_row(engine, message_id) == first


def test_receipt_keeps_the_raw_payload_the_url_query_and_the_idempotency_token(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine)
    params = callback(sid, "sent")
    status.post(params, query=query_for(message_id), idempotency_token="tok-1")
    receipt = fetch_one(
        engine,
        "SELECT message_sid, message_status, message_id, raw_payload, idempotency_token FROM delivery_receipts",
    )
    assert (receipt.message_sid, receipt.message_status, receipt.message_id) == (sid, "sent", message_id)
    assert receipt.raw_payload == {**params, "_query": {"message_id": str(message_id)}}
    assert receipt.idempotency_token == "tok-1"


# --- matching the message ---


def test_an_ambiguous_send_is_reconciled_by_the_message_id_in_the_callback_url(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine, status="AMBIGUOUS", with_sid=False)
    window = deliver(status, message_id, callback(sid, "sent"))
    row = message_row(engine, message_id)
    assert (row.status, row.provider_sid) == ("SENT", sid)
    assert row.sent_at in window
    # Later callbacks find it by SID alone.
    status.post(callback(sid, "delivered"))
    assert message_row(engine, message_id).status == "DELIVERED"


def test_a_message_id_whose_row_holds_another_sid_is_not_touched(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, own_sid = seed_message(engine)
    stranger = "SM" + uuid.uuid4().hex
    deliver(status, message_id, callback(stranger, "delivered"))
    row = message_row(engine, message_id)
    assert (row.status, row.provider_sid) == ("ACCEPTED", own_sid)
    assert fetch_one(engine, "SELECT message_id FROM delivery_receipts")[0] is None


def test_a_callback_for_an_unknown_sid_is_stored_and_answered_200(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    sid = "SM" + uuid.uuid4().hex
    response = status.post(callback(sid, "delivered"))
    assert response.status_code == 200
    receipt = fetch_one(engine, "SELECT message_sid, message_id FROM delivery_receipts")
    assert (receipt.message_sid, receipt.message_id) == (sid, None)


# --- opt-outs reported as send errors ---


@pytest.mark.parametrize("code", ["21610", "63014"])
def test_an_opt_out_error_sets_the_user_to_stop(
    status: TwilioWebhookClient, engine: Engine, code: str
) -> None:
    message_id, sid = seed_message(engine)
    deliver(status, message_id, callback(sid, "failed", ErrorCode=code))
    assert fetch_one(engine, "SELECT consent_state FROM users WHERE phone_e164 = :p", p=PHONE)[0] == "STOP"
    consent = fetch_one(engine, "SELECT source, detail FROM audit_events WHERE kind = 'consent.changed'")
    assert consent.source == f"send_error:{code}"
    assert consent.detail["message_id"] == message_id
    assert message_row(engine, message_id).status == "FAILED"


def test_an_ordinary_failure_leaves_consent_alone(status: TwilioWebhookClient, engine: Engine) -> None:
    message_id, sid = seed_message(engine)
    deliver(status, message_id, callback(sid, "failed", ErrorCode="30008"))
    assert fetch_one(engine, "SELECT consent_state FROM users")[0] == "OPT_IN"


# --- malformed, but signed ---


@pytest.mark.parametrize(
    ("drop", "extra", "field"),
    [
        ("MessageSid", {}, "MessageSid"),
        ("MessageStatus", {}, "MessageStatus"),
        (None, {"ErrorCode": "thirty"}, "ErrorCode"),
    ],
)
def test_a_malformed_callback_is_a_400_with_a_reason_and_kept_for_audit(
    status: TwilioWebhookClient, engine: Engine, drop: str | None, extra: dict[str, str], field: str
) -> None:
    message_id, sid = seed_message(engine)
    params = callback(sid, "delivered", **extra)
    if drop:
        del params[drop]
    response = status.post(params, query=query_for(message_id))
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(field)
    assert fetch_one(engine, "SELECT raw_payload FROM delivery_receipts")[0]["To"] == params["To"]
    assert message_row(engine, message_id).status == "ACCEPTED"


def test_a_repeated_malformed_callback_gets_the_same_400_and_is_kept_once(
    status: TwilioWebhookClient, engine: Engine
) -> None:
    message_id, sid = seed_message(engine)
    params = callback(sid, "failed", ErrorCode="thirty")
    answers = [status.post(params, query=query_for(message_id)) for _ in range(2)]
    assert [(r.status_code, r.get_data(as_text=True)) for r in answers] == [
        (400, answers[0].get_data(as_text=True))
    ] * 2
    assert count_rows(engine, "delivery_receipts") == 1


def test_a_callback_read_with_a_problem_is_kept_and_acts_on_nothing_it_names(
    settings: Settings, engine: Engine
) -> None:
    # Every field the service acts on is there (an opt-out failure), but the reading found a problem.
    message_id, sid = seed_message(engine)
    params = callback(sid, "failed", ErrorCode="21610")
    result = _record_directly(engine, params, message_id, problem="message_id: out of range")
    assert (result.outcome, result.reason) == (Outcome.MALFORMED, "message_id: out of range")
    receipt = fetch_one(engine, "SELECT message_id, error_code, raw_payload FROM delivery_receipts")
    assert (receipt.message_id, receipt.error_code) == (None, 21610)
    assert receipt.raw_payload == {**params, "_query": {"message_id": str(message_id)}}
    assert message_row(engine, message_id).status == "ACCEPTED"
    assert count_rows(engine, "audit_events") == 0
    assert fetch_one(engine, "SELECT consent_state FROM users")[0] == "OPT_IN"


def test_a_message_id_that_is_not_a_number_is_a_400(status: TwilioWebhookClient, engine: Engine) -> None:
    message_id, sid = seed_message(engine)
    response = status.post(callback(sid, "delivered"), query="message_id=abc")
    assert response.status_code == 400
    assert "message_id" in response.get_data(as_text=True)
    assert message_row(engine, message_id).status == "ACCEPTED"


def test_unreachable_database_answers_503_so_twilio_retries(status: TwilioWebhookClient) -> None:
    override_settings(make_settings(f"postgresql+pg8000://ese:ese@127.0.0.1:{free_port()}/ese"))
    bootstrap.reset()
    assert status.post(callback("SM" + uuid.uuid4().hex, "delivered")).status_code == 503


def test_a_database_resetting_connections_as_they_open_answers_503(status: TwilioWebhookClient) -> None:
    with resetting_server() as port:
        override_settings(make_settings(f"postgresql+pg8000://ese:ese@127.0.0.1:{port}/ese"))
        bootstrap.reset()
        assert status.post(callback("SM" + uuid.uuid4().hex, "delivered")).status_code == 503
        bootstrap.reset()
