"""A user's conversation on real PostgreSQL: which campaign message an inbound message answers (the last one
sent to that phone within 72 h before it), what else an inbound message keeps (Twilio's WhatsApp fields, the
normalised body, the channel), the timeline of both (newest first, by keyset), and the operator's add-user
and consent rules (a reason, evidence to leave STOP, each change audited)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, insert, text

from shared.adapters.twilio_forms import InboundMessage
from shared.clock import FixedClock
from shared.db.models import Message
from shared.db.unit_of_work import UnitOfWork
from shared.domain.consent_rules import ConsentRefused
from shared.domain.enums import ConsentState
from shared.domain.errors import InvalidCursor, InvalidTimezone, NotFound
from shared.domain.inbound_text import Channel
from shared.services import conversation, users
from shared.services.inbound import ReplyTexts, receive_inbound_message
from shared.services.users import ConsentChange, Operator, UserExists
from tests.seeding import T0, add_campaign, add_users

REPLIES = ReplyTexts(stop="bye", start="welcome back", help="ask us", auto=None)
OPERATOR = Operator("dashboard", "token:0123456789ab")
_sids = iter(range(1, 10**6))


def _message(engine: Engine, campaign_id: int, phone: str, status: str, sent_at: datetime | None) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(Message).returning(Message.id),
                [
                    {
                        "campaign_id": campaign_id,
                        "recipient_phone": phone,
                        "body": f"offer {status}",
                        "status": status,
                        "sent_at": sent_at,
                        "created_at": (sent_at or T0) - timedelta(minutes=5),
                    }
                ],
            ).scalar_one()
        )


def _inbound(engine: Engine, phone: str, body: str, at: datetime, **fields: Any) -> dict[str, Any]:
    sid = f"SM{next(_sids):032d}"
    raw = {"MessageSid": sid, "From": f"whatsapp:{phone}", "Body": body}
    message = InboundMessage(sid, phone, body.strip(), None, None, raw, channel=Channel.WHATSAPP)
    receive_inbound_message(
        UnitOfWork(engine),
        replace(message, **fields),
        idempotency_token=None,
        replies=REPLIES,
        clock=FixedClock(at),
    )
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM events_inbound WHERE message_sid = :s"), {"s": sid}).one()
    return dict(row._mapping)


def test_an_inbound_message_keeps_whatsapp_fields_normalised_body_and_channel(engine: Engine) -> None:
    (phone,) = add_users(engine, 1)
    row = _inbound(
        engine, phone, "  \uff37hen does the SALE  end? ", T0, wa_id="14155000000", profile_name="Ana"
    )

    assert (row["wa_id"], row["profile_name"], row["channel"]) == ("14155000000", "Ana", "whatsapp")
    assert row["body_normalized"] == "when does the sale end?"
    assert (
        row["body"] == "\uff37hen does the SALE  end?"
    )  # as written, only trimmed; raw_payload has it exactly
    assert row["raw_payload"]["Body"] == "  \uff37hen does the SALE  end? "
    assert row["received_at"] == T0


def test_it_answers_the_last_message_sent_to_that_phone_within_72_hours(engine: Engine) -> None:
    me, other = add_users(engine, 2)
    older, newer, unsent = (add_campaign(engine, status="RUNNING", name=n) for n in ("a", "b", "c"))
    _message(engine, older, me, "READ", T0 - timedelta(hours=30))
    expected = _message(engine, newer, me, "DELIVERED", T0 - timedelta(hours=2))
    # Not sent (ACCEPTED: no report yet), failed after a sent report, or sent to someone else: never answered.
    _message(engine, unsent, me, "ACCEPTED", None)
    _message(engine, add_campaign(engine, status="RUNNING"), me, "UNDELIVERED", T0 - timedelta(hours=1))
    _message(engine, add_campaign(engine, status="RUNNING"), other, "SENT", T0 - timedelta(minutes=1))
    # Sent after the reply arrived: not what it answers.
    _message(engine, add_campaign(engine, status="RUNNING"), me, "SENT", T0 + timedelta(seconds=1))

    assert _inbound(engine, me, "thanks", T0)["in_reply_to_message_id"] == expected


def test_a_message_sent_73_hours_before_is_not_answered_one_at_71_is(engine: Engine) -> None:
    me, late = add_users(engine, 2)
    campaign = add_campaign(engine, status="RUNNING")
    _message(engine, campaign, me, "SENT", T0 - timedelta(hours=73))
    within = _message(engine, campaign, late, "SENT", T0 - timedelta(hours=71))

    assert _inbound(engine, me, "hi", T0)["in_reply_to_message_id"] is None
    assert _inbound(engine, late, "hi", T0)["in_reply_to_message_id"] == within


def test_the_timeline_merges_both_kinds_newest_first_a_page_at_a_time(engine: Engine) -> None:
    (me,) = add_users(engine, 1)
    campaign = add_campaign(engine, status="RUNNING", name="spring sale")
    expected: list[tuple[str, int]] = []
    for hour in range(6):
        at = T0 + timedelta(hours=hour)
        expected.append(
            (
                "outbound",
                _message(
                    engine, campaign if hour == 0 else add_campaign(engine, status="RUNNING"), me, "READ", at
                ),
            )
        )
        expected.append(("inbound", _inbound(engine, me, f"reply {hour}", at + timedelta(minutes=1))["id"]))
    expected.reverse()

    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        page = conversation.conversation(UnitOfWork(engine), me, limit=5, cursor=cursor)
        seen += [(conversation.KINDS[row.kind], row.id) for row in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == expected and pages == 3
    first = conversation.conversation(UnitOfWork(engine), me, limit=50, cursor=None).items
    oldest_reply, oldest_message = first[-2], first[-1]
    assert oldest_reply.in_reply_to_message_id == oldest_message.id
    assert (oldest_reply.reply_campaign_name, oldest_message.campaign_name) == ("spring sale", "spring sale")


def test_same_instant_rows_are_neither_lost_nor_repeated_across_pages(engine: Engine) -> None:
    (me,) = add_users(engine, 1)
    ids = [_message(engine, add_campaign(engine, status="RUNNING"), me, "SENT", T0) for _ in range(3)]
    inbound = [_inbound(engine, me, "x", T0)["id"] for _ in range(3)]

    seen, cursor = [], None
    for _ in range(6):
        page = conversation.conversation(UnitOfWork(engine), me, limit=1, cursor=cursor)
        seen += [(row.kind, row.id) for row in page.items]
        cursor = page.next_cursor
    assert cursor is None
    assert seen == [(1, i) for i in sorted(inbound, reverse=True)] + [
        (0, i) for i in sorted(ids, reverse=True)
    ]


def test_a_forged_cursor_and_an_unknown_user_are_refused(engine: Engine) -> None:
    (me,) = add_users(engine, 1)
    with pytest.raises(InvalidCursor):
        conversation.conversation(UnitOfWork(engine), me, limit=5, cursor="WyJub3QgYSBkYXRlIiwwLDFd")
    with pytest.raises(NotFound):
        conversation.conversation(UnitOfWork(engine), "+14155559999", limit=5, cursor=None)


def _audits(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_phone, source, detail FROM audit_events ORDER BY id")).all()
    return [(r.user_phone, r.source, r.detail) for r in rows]


def test_a_consent_change_needs_a_reason() -> None:
    with pytest.raises(ValidationError) as missing:
        ConsentChange.model_validate({"consent_state": "OPT_IN"})
    with pytest.raises(ValidationError) as blank:
        ConsentChange.model_validate({"consent_state": "OPT_IN", "reason": "   "})
    assert [e["loc"] for e in missing.value.errors()] == [("reason",)]
    assert [e["loc"] for e in blank.value.errors()] == [("reason",)]


def test_leaving_stop_is_refused_without_evidence_and_audited_with_it(engine: Engine) -> None:
    (me,) = add_users(engine, 1, consent="STOP")
    change = ConsentChange(consent_state=ConsentState.OPT_IN, reason="called us")

    with pytest.raises(ConsentRefused) as refused:
        users.set_consent(UnitOfWork(engine), me, change, T0, OPERATOR)
    assert refused.value.details["field"] == "evidence"
    assert users.get_user(UnitOfWork(engine), me).consent_state == "STOP"
    assert _audits(engine) == []

    evidenced = change.model_copy(update={"evidence": "signed form #12"})
    user = users.set_consent(UnitOfWork(engine), me, evidenced, T0, OPERATOR)

    assert user.consent_state == "OPT_IN"
    assert _audits(engine) == [
        (
            me,
            "dashboard",
            {
                "from": "STOP",
                "to": "OPT_IN",
                "reason": "called us",
                "evidence": "signed form #12",
                "operator": OPERATOR.id,
                "phone": "+***" + me[-4:],
            },
        )
    ]


def test_adding_a_user_with_consent_audits_it_and_refuses_a_taken_phone(engine: Engine) -> None:
    consent = ConsentChange(consent_state=ConsentState.OPT_IN, reason="signed up in store")
    user = users.add_user(UnitOfWork(engine), "+14155550100", {"city": "Lima"}, consent, T0, OPERATOR)

    assert (user.consent_state, user.attributes) == ("OPT_IN", {"city": "Lima"})
    [(phone, source, detail)] = _audits(engine)
    assert (phone, source, detail["from"], detail["to"], detail["created"]) == (
        "+14155550100",
        "dashboard",
        "OPT_OUT",
        "OPT_IN",
        True,
    )
    with pytest.raises(UserExists) as taken:
        users.add_user(UnitOfWork(engine), "+14155550100", {}, None, T0, OPERATOR)
    assert taken.value.details["field"] == "phone"
    with pytest.raises(InvalidTimezone):
        users.add_user(UnitOfWork(engine), "+14155550101", {"timezone": "Mars/Base"}, None, T0, OPERATOR)
    assert len(_audits(engine)) == 1
