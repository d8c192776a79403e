"""The campaign analytics of the reports service on real PostgreSQL, each figure against a hand-computed
expectation: percentiles over known timestamps, the 72-hour attribution window at its edges, deferrals by
cause with their waits, shares of the audience, sends per minute, and the streamed per-recipient CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from shared.db.models import Message
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import NotFound
from shared.services import reports
from tests.seeding import T0, add_campaign, add_users


def _messages(engine: Engine, campaign_id: int, rows: list[dict[str, Any]]) -> list[int]:
    """One INSERT per row: the rows set different columns."""
    with engine.begin() as conn:
        return [
            int(
                conn.execute(
                    insert(Message).returning(Message.id), {"campaign_id": campaign_id, "body": "Hi"} | row
                ).scalar_one()
            )
            for row in rows
        ]


def _audit(engine: Engine, **row: Any) -> None:
    row["detail"] = json.dumps(row.get("detail", {}))
    row.setdefault("campaign_id", None)
    row.setdefault("message_id", None)
    row.setdefault("user_phone", None)
    row.setdefault("source", None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (occurred_at, kind, campaign_id, message_id, user_phone, source, detail)"
                " VALUES (:at, :kind, :campaign_id, :message_id, :user_phone, :source, CAST(:detail AS jsonb))"
            ),
            row,
        )


def _stop(
    engine: Engine, phone: str, at: datetime, source: str = "inbound_keyword", to: str = "STOP"
) -> None:
    _audit(
        engine,
        at=at,
        kind="consent.changed",
        user_phone=phone,
        source=source,
        detail={"from": "OPT_IN", "to": to},
    )


def _inbound(engine: Engine, phone: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, received_at)"
                " VALUES ('SM' || md5(:phone || CAST(:at AS text)), :phone, 'hello', '{}', 'none', :at)"
            ),
            {"phone": phone, "at": at},
        )


def _analytics(engine: Engine, campaign_id: int) -> reports.CampaignAnalytics:
    return reports.campaign_summary(UnitOfWork(engine), campaign_id).analytics


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_delivery_and_read_times_are_the_median_and_p90_from_sent(engine: Engine) -> None:
    phones = add_users(engine, 5)
    campaign_id = add_campaign(engine, status="RUNNING")
    delivered_after = [10, 20, 30, 40]
    rows = [
        {"recipient_phone": p, "status": "DELIVERED", "sent_at": T0, "delivered_at": T0 + seconds(d)}
        for p, d in zip(phones, delivered_after, strict=False)
    ]
    # Two of them read, 60 s and 120 s after sent.
    rows[0] |= {"status": "READ", "read_at": T0 + seconds(60)}
    rows[1] |= {"status": "READ", "read_at": T0 + seconds(120)}
    # Sent but not delivered: not measured.
    rows.append({"recipient_phone": phones[4], "status": "SENT", "sent_at": T0})
    _messages(engine, campaign_id, rows)

    figures = _analytics(engine, campaign_id)

    # percentile_cont: median of 10, 20, 30, 40 is 25; p90 is at 0.9 * 3 = 2.7 -> 30 + 0.7 * 10 = 37.
    assert figures.time_to_deliver.model_dump() == {
        "messages": 4,
        "median_seconds": pytest.approx(25),
        "p90_seconds": pytest.approx(37),
    }
    # Of 60 and 120: median 90, p90 = 60 + 0.9 * 60 = 114.
    assert figures.time_to_read.model_dump() == {
        "messages": 2,
        "median_seconds": pytest.approx(90),
        "p90_seconds": pytest.approx(114),
    }


def test_a_campaign_with_nothing_delivered_has_no_times(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="RUNNING")
    figures = _analytics(engine, campaign_id)
    assert figures.time_to_deliver.model_dump() == {
        "messages": 0,
        "median_seconds": None,
        "p90_seconds": None,
    }
    assert (figures.opted_out, figures.replied, figures.replies, figures.deferrals) == (0, 0, 0, [])
    assert figures.sends_per_minute == [] and figures.audience == 0


def test_a_stop_within_72_hours_after_the_message_is_attributed_and_one_outside_is_not(
    engine: Engine,
) -> None:
    at_71h, at_73h, before, by_operator, opted_out_only, unsent = add_users(engine, 6)
    campaign_id = add_campaign(engine, status="RUNNING")
    sent = [at_71h, at_73h, before, by_operator, opted_out_only]
    _messages(
        engine,
        campaign_id,
        [{"recipient_phone": p, "status": "DELIVERED", "sent_at": T0, "delivered_at": T0} for p in sent]
        + [{"recipient_phone": unsent, "status": "QUEUED"}],
    )
    _stop(engine, at_71h, T0 + timedelta(hours=71))
    _stop(engine, at_73h, T0 + timedelta(hours=73))
    _stop(engine, before, T0 - timedelta(hours=1))
    _stop(engine, by_operator, T0 + timedelta(hours=1), source="api")  # not the user's own STOP
    _stop(engine, opted_out_only, T0 + timedelta(hours=1), to="OPT_OUT")
    _stop(engine, unsent, T0 + timedelta(hours=1))  # never sent to: nothing to attribute it to

    assert _analytics(engine, campaign_id).opted_out == 1

    # Twilio's own opt-out handling is the user's STOP too.
    _stop(engine, at_73h, T0 + timedelta(hours=2), source="twilio_opt_out_type")
    assert _analytics(engine, campaign_id).opted_out == 2


def test_replies_are_inbound_messages_within_72_hours_after_the_recipients_message(engine: Engine) -> None:
    chatty, late, early, unsent, stranger = add_users(engine, 5)
    campaign_id = add_campaign(engine, status="RUNNING")
    _messages(
        engine,
        campaign_id,
        [
            {"recipient_phone": chatty, "status": "READ", "sent_at": T0},
            {"recipient_phone": late, "status": "DELIVERED", "sent_at": T0},
            {"recipient_phone": early, "status": "DELIVERED", "sent_at": T0},
            {"recipient_phone": unsent, "status": "FAILED"},
        ],
    )
    _inbound(engine, chatty, T0 + timedelta(minutes=5))
    _inbound(engine, chatty, T0 + timedelta(hours=71))
    _inbound(engine, late, T0 + timedelta(hours=73))
    _inbound(engine, early, T0 - timedelta(minutes=5))
    _inbound(engine, unsent, T0 + timedelta(minutes=5))
    _inbound(engine, stranger, T0 + timedelta(minutes=5))  # not a recipient of this campaign

    figures = _analytics(engine, campaign_id)

    assert (figures.replied, figures.replies) == (1, 2)


def test_deferrals_by_cause_with_the_time_each_message_waited(engine: Engine) -> None:
    phones = add_users(engine, 5)
    campaign_id = add_campaign(engine, status="RUNNING")
    quiet_once, quiet_twice, throttled, _, _ = _messages(
        engine,
        campaign_id,
        [
            {"recipient_phone": phones[0]},
            {"recipient_phone": phones[1]},
            {"recipient_phone": phones[2]},
            {"recipient_phone": phones[3], "rate_limit_deferrals": 2, "rate_limit_wait_seconds": 5.5},
            {"recipient_phone": phones[4], "rate_limit_deferrals": 1, "rate_limit_wait_seconds": 0.5},
        ],
    )

    def deferred(message_id: int, phone: str, kind: str, wait: float, **detail: Any) -> None:
        until = (T0 + seconds(wait)).isoformat()
        _audit(
            engine,
            at=T0,
            kind=kind,
            campaign_id=campaign_id,
            message_id=message_id,
            user_phone=phone,
            source="send_message",
            detail=detail | {"until": until},
        )

    deferred(quiet_once, phones[0], "message.deferred", 3600, reason="quiet hours")
    deferred(quiet_twice, phones[1], "message.deferred", 1800, reason="quiet hours")
    deferred(quiet_twice, phones[1], "message.deferred", 600, reason="quiet hours")
    deferred(throttled, phones[2], "message.throttled", 10, error_code=63018)

    causes = {d.cause: d.model_dump(exclude={"cause"}) for d in _analytics(engine, campaign_id).deferrals}

    assert causes == {
        # Per message 3600 and 1800 + 600: median 3000, p90 = 2400 + 0.9 * 1200 = 3480.
        "quiet hours": {
            "messages": 2,
            "deferrals": 3,
            "median_wait_seconds": pytest.approx(3000),
            "p90_wait_seconds": pytest.approx(3480),
            "max_wait_seconds": pytest.approx(3600),
        },
        # Per message 5.5 and 0.5: median 3, p90 = 0.5 + 0.9 * 5 = 5.
        "rate limit": {
            "messages": 2,
            "deferrals": 3,
            "median_wait_seconds": pytest.approx(3),
            "p90_wait_seconds": pytest.approx(5),
            "max_wait_seconds": pytest.approx(5.5),
        },
        "Twilio throughput limit": {
            "messages": 1,
            "deferrals": 1,
            "median_wait_seconds": pytest.approx(10),
            "p90_wait_seconds": pytest.approx(10),
            "max_wait_seconds": pytest.approx(10),
        },
    }


def test_statuses_and_error_codes_are_shares_of_the_audience_with_twilios_meaning(engine: Engine) -> None:
    phones = add_users(engine, 4)
    campaign_id = add_campaign(engine, status="RUNNING")
    _messages(
        engine,
        campaign_id,
        [
            {"recipient_phone": phones[0], "status": "DELIVERED", "provider_sid": "SM1", "sent_at": T0},
            {"recipient_phone": phones[1], "status": "READ", "provider_sid": "SM2", "sent_at": T0},
            {"recipient_phone": phones[2], "status": "FAILED", "error_code": 30005, "provider_sid": "SM3"},
            {
                "recipient_phone": phones[3],
                "status": "UNDELIVERED",
                "error_code": 30003,
                "provider_sid": "SM4",
            },
        ],
    )
    # The frozen audience is larger than the ledger so far (fan-out not finished): it is the denominator.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaign_pages (campaign_id, page_no, first_phone, last_phone, size)"
                " VALUES (:c, 0, :first, :last, 8)"
            ),
            {"c": campaign_id, "first": phones[0], "last": phones[3]},
        )

    figures = _analytics(engine, campaign_id)

    assert figures.audience == 8
    shares = {s.status.value: (s.count, s.share_of_audience) for s in figures.statuses}
    assert shares["DELIVERED"] == (1, 1 / 8) and shares["FAILED"] == (1, 1 / 8)
    assert shares["QUEUED"] == (0, 0.0) and len(shares) == 11
    assert [(e.error_code, e.count, e.share_of_audience) for e in figures.error_codes] == [
        (30003, 1, 1 / 8),
        (30005, 1, 1 / 8),
    ]
    assert "30005" in figures.error_codes[1].meaning and "does not exist" in figures.error_codes[1].meaning
    # The funnel: 4 handed to Twilio, 2 delivered (DELIVERED + READ), 1 read.
    assert [(f.step, f.count, f.share_of_sent) for f in figures.funnel] == [
        ("sent", 4, 1.0),
        ("delivered", 2, 0.5),
        ("read", 1, 0.25),
    ]


def test_sends_per_minute_counts_each_utc_minute_with_a_send(engine: Engine) -> None:
    phones = add_users(engine, 4)
    campaign_id = add_campaign(engine, status="RUNNING")
    sent = [T0 + seconds(10), T0 + seconds(50), T0 + seconds(121), None]
    _messages(
        engine,
        campaign_id,
        [
            {"recipient_phone": p, "status": "SENT" if at else "QUEUED", "sent_at": at}
            for p, at in zip(phones, sent, strict=True)
        ],
    )

    minutes = [(m.minute, m.sent) for m in _analytics(engine, campaign_id).sends_per_minute]

    assert minutes == [(T0, 2), (T0 + timedelta(minutes=2), 1)]


def _export(engine: Engine, campaign_id: int, page_rows: int) -> tuple[list[str], list[list[str]]]:
    text_ = "".join(reports.export_messages(UnitOfWork(engine), campaign_id, page_rows=page_rows))
    header, *rows = list(csv.reader(io.StringIO(text_)))
    return header, rows


def test_the_export_has_one_row_per_recipient_in_phone_order_across_pages(engine: Engine) -> None:
    phones = add_users(engine, 5)
    campaign_id = add_campaign(engine, status="RUNNING")
    other = add_campaign(engine, status="RUNNING", name="other")
    _messages(engine, other, [{"recipient_phone": phones[0], "status": "QUEUED"}])
    rows: list[dict[str, Any]] = [
        {
            "recipient_phone": phones[4],
            "status": "READ",
            "provider_sid": "SMread",
            "sent_at": T0,
            "delivered_at": T0 + seconds(4),
            "read_at": T0 + seconds(64),
        },
        {
            "recipient_phone": phones[2],
            "status": "FAILED",
            "error_code": 30005,
            "status_reason": '=HYPERLINK("http://evil")',
            "rate_limit_deferrals": 2,
            "retry_count": 1,
        },
        {"recipient_phone": phones[0], "status": "DELIVERED", "sent_at": T0, "delivered_at": T0 + seconds(2)},
        {"recipient_phone": phones[1], "status": "QUEUED"},
        {"recipient_phone": phones[3], "status": "SKIPPED", "status_reason": "no consent"},
    ]
    _messages(engine, campaign_id, rows)
    _stop(engine, phones[4], T0 + timedelta(hours=1))
    _inbound(engine, phones[4], T0 + timedelta(minutes=1))
    _inbound(engine, phones[4], T0 + timedelta(hours=1))

    header, exported = _export(engine, campaign_id, page_rows=2)  # three pages of at most two

    assert tuple(header) == reports.EXPORT_COLUMNS
    assert [row[1] for row in exported] == phones  # full numbers, each recipient once, in phone order
    by_phone = {row[1]: dict(zip(header, row, strict=True)) for row in exported}
    read = by_phone[phones[4]]
    assert (read["status"], read["seconds_to_deliver"], read["seconds_to_read"]) == ("READ", "4", "64")
    assert (read["opted_out_within_72h"], read["replies_within_72h"], read["sent_at"]) == (
        "yes",
        "2",
        T0.isoformat(),
    )
    failed = by_phone[phones[2]]
    assert failed["error_code"] == "30005" and "does not exist" in failed["error_meaning"]
    assert failed["status_reason"] == '\'=HYPERLINK("http://evil")'  # no formula for a spreadsheet
    assert (failed["retries"], failed["rate_limit_deferrals"], failed["opted_out_within_72h"]) == (
        "1",
        "2",
        "no",
    )
    assert by_phone[phones[1]]["sent_at"] == "" and by_phone[phones[1]]["seconds_to_deliver"] == ""


def test_the_export_of_an_unknown_campaign_fails_before_any_row(engine: Engine) -> None:
    with pytest.raises(NotFound):
        reports.export_messages(UnitOfWork(engine), 424242)


def test_an_empty_campaign_exports_its_header_only(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="RUNNING")
    header, rows = _export(engine, campaign_id, page_rows=2)
    assert tuple(header) == reports.EXPORT_COLUMNS and rows == []
