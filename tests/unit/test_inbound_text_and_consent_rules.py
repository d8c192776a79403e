"""The pure rules behind a conversation and an operator's consent change: the inbound body normalised for
matching, the channel from Twilio's From, and what an operator may do to consent."""

from __future__ import annotations

import pytest

from shared.domain.consent_rules import ConsentRefused, check_operator_change, operator_id
from shared.domain.enums import ConsentState
from shared.domain.inbound_text import Channel, channel_of, normalize_body

S = ConsentState


@pytest.mark.parametrize(
    ("body", "normalized"),
    [
        ("  Stop  ", "stop"),
        ("\uff33\uff34\uff2f\uff30", "stop"),  # full-width letters (NFKC)
        ("Straße", "strasse"),  # case folding, not lower()
        ("STRASSE", "strasse"),
        ("When  does\tthe\nsale end?", "when does the sale end?"),
        ("ﬁne", "fine"),  # the fi ligature (NFKC)
        ("   ", None),
        (None, None),
    ],
)
def test_the_body_is_trimmed_nfkc_normalised_case_folded_and_its_spaces_collapsed(
    body: str | None, normalized: str | None
) -> None:
    assert normalize_body(body) == normalized


@pytest.mark.parametrize(
    ("raw", "channel"),
    [
        ("whatsapp:+14155550100", Channel.WHATSAPP),
        ("WhatsApp:+14155550100", Channel.WHATSAPP),
        ("+14155550100", Channel.SMS),
        ("messenger:12345", None),
        ("", None),
        (None, None),
    ],
)
def test_the_channel_comes_from_the_from_prefix(raw: str | None, channel: Channel | None) -> None:
    assert channel_of(raw) == channel


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.OPT_IN, S.OPT_OUT),
        (S.OPT_IN, S.STOP),
        (S.OPT_OUT, S.STOP),
        (S.OPT_OUT, S.OPT_IN),
        (S.STOP, S.STOP),
    ],
)
def test_an_operator_may_lower_consent_and_opt_in_a_user_who_only_opted_out(
    current: ConsentState, new: ConsentState
) -> None:
    check_operator_change(current, new, evidence=None)


@pytest.mark.parametrize("new", [S.OPT_IN, S.OPT_OUT])
def test_moving_a_user_out_of_stop_needs_evidence(new: ConsentState) -> None:
    with pytest.raises(ConsentRefused) as refused:
        check_operator_change(S.STOP, new, evidence=None)

    assert refused.value.details == {"field": "evidence", "current": "STOP", "requested": new.value}
    assert "START" in refused.value.message and "evidence" in refused.value.message
    check_operator_change(S.STOP, new, evidence="signed form #12")


def test_the_operator_id_is_a_short_hash_of_the_token_never_the_token() -> None:
    token = "a-secret-api-token-" + "x" * 20
    assert operator_id(token) == operator_id(f" {token} ")
    assert operator_id(token).startswith("token:") and len(operator_id(token)) == len("token:") + 12
    assert token not in operator_id(token) and operator_id(token) != operator_id(token + "y")
