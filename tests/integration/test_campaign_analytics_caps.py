"""The campaign analytics of sender pools and frequency caps, on real PostgreSQL, against hand-counted
expectations: messages deferred by the caps (and how often), skipped by them, refused by WhatsApp's own
marketing limit (63049), a pool campaign's messages by sender and status, and the export's new columns."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import Engine, insert

from shared.db.models import Message
from shared.db.unit_of_work import UnitOfWork
from shared.services import reports
from tests.seeding import T0, add_campaign, add_sender, add_users

A, B = "whatsapp:+14155238886", "whatsapp:+14155238887"


def _messages(engine: Engine, campaign_id: int, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(Message), {"campaign_id": campaign_id, "body": "Hi"} | row)


def _pool_campaign(engine: Engine) -> int:
    add_sender(engine, A, pool="promo")
    add_sender(engine, B, pool="promo")
    phones = add_users(engine, 7)
    campaign_id = add_campaign(engine, status="RUNNING", sender_pool="promo")
    _messages(
        engine,
        campaign_id,
        [
            {
                "recipient_phone": phones[0],
                "status": "DELIVERED",
                "sender": A,
                "sent_at": T0,
                "frequency_cap_deferrals": 2,
            },
            {"recipient_phone": phones[1], "status": "DELIVERED", "sender": A, "sent_at": T0},
            {
                "recipient_phone": phones[2],
                "status": "SENT",
                "sender": B,
                "sent_at": T0,
                "frequency_cap_deferrals": 1,
            },
            {"recipient_phone": phones[3], "status": "FAILED", "sender": B, "error_code": 63049},
            {
                "recipient_phone": phones[4],
                "status": "SKIPPED",
                "status_reason": "frequency_cap",
                "frequency_cap_deferrals": 1,
            },
            {"recipient_phone": phones[5], "status": "SKIPPED", "status_reason": "missing_variables"},
            {"recipient_phone": phones[6], "status": "QUEUED", "frequency_cap_deferrals": 3},
        ],
    )
    return campaign_id


def test_the_caps_effect_is_counted_from_the_ledger(engine: Engine) -> None:
    figures = reports.campaign_summary(UnitOfWork(engine), _pool_campaign(engine)).analytics

    assert figures.frequency_caps.model_dump() == {
        "deferred_messages": 4,
        "deferrals": 7,
        "skipped": 1,
        "failed_marketing_limit": 1,
    }


def test_a_pool_campaign_counts_messages_by_sender_and_status(engine: Engine) -> None:
    summary = reports.campaign_summary(UnitOfWork(engine), _pool_campaign(engine))

    by_sender = {entry.sender: (entry.messages, entry.statuses) for entry in summary.analytics.senders}
    assert by_sender == {
        A: (2, {"DELIVERED": 2}),
        B: (2, {"SENT": 1, "FAILED": 1}),
        None: (3, {"SKIPPED": 2, "QUEUED": 1}),
    }
    # The summary's existing keys are all still there.
    assert summary.skipped_by_reason == {"frequency_cap": 1, "missing_variables": 1}


def test_a_campaign_without_a_pool_lists_no_senders_and_no_cap_effect(engine: Engine) -> None:
    phones = add_users(engine, 1)
    campaign_id = add_campaign(engine, status="RUNNING")
    _messages(engine, campaign_id, [{"recipient_phone": phones[0], "status": "SENT", "sent_at": T0}])
    figures = reports.campaign_summary(UnitOfWork(engine), campaign_id).analytics
    assert figures.senders == []
    assert set(figures.frequency_caps.model_dump().values()) == {0}


def test_the_export_names_each_messages_sender_and_cap_deferrals(engine: Engine) -> None:
    campaign_id = _pool_campaign(engine)
    text = "".join(reports.export_messages(UnitOfWork(engine), campaign_id))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["sender"], row["frequency_cap_deferrals"]) for row in rows] == [
        (A, "2"),
        (A, "0"),
        (B, "1"),
        (B, "0"),
        ("", "1"),
        ("", "0"),
        ("", "3"),
    ]
