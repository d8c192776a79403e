from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.consent_keywords import KeywordAction, classify_keyword, from_opt_out_type
from shared.domain.enums import ConsentState

STOP_WORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
START_WORDS = ["START", "YES", "UNSTOP"]
HELP_WORDS = ["HELP", "INFO"]


@pytest.mark.parametrize(
    ("words", "action"),
    [(STOP_WORDS, KeywordAction.STOP), (START_WORDS, KeywordAction.START), (HELP_WORDS, KeywordAction.HELP)],
)
def test_every_keyword_of_each_family_is_recognized_in_any_case(
    words: list[str], action: KeywordAction
) -> None:
    for word in words:
        for written in (word, word.lower(), word.capitalize()):
            assert classify_keyword(written) is action, written


@pytest.mark.parametrize(
    "body", ["stop.", " Stop ", "STOP!!!", "\tstop\n", "¡STOP!", "«stop»", '"Stop"', "...stop?", "stop\u200b"]
)
def test_surrounding_whitespace_and_punctuation_are_ignored(body: str) -> None:
    assert classify_keyword(body) is KeywordAction.STOP


@pytest.mark.parametrize(
    "body",
    ["please stop calling", "stop it", "STOP STOP", "stopp", "s.t.o.p", "don't stop", "yes please", "", None],
)
def test_keyword_inside_a_sentence_or_misspelled_is_not_a_keyword(body: str | None) -> None:
    assert classify_keyword(body) is None


def test_long_message_ending_in_a_keyword_is_not_a_keyword() -> None:
    assert classify_keyword("x" * 100 + " stop") is None


def test_keyword_actions_set_consent_except_help() -> None:
    assert KeywordAction.STOP.consent_state is ConsentState.STOP
    assert KeywordAction.START.consent_state is ConsentState.OPT_IN
    assert KeywordAction.HELP.consent_state is None


@pytest.mark.parametrize(
    ("value", "action"),
    [
        ("STOP", KeywordAction.STOP),
        ("START", KeywordAction.START),
        ("HELP", KeywordAction.HELP),
        (" stop ", KeywordAction.STOP),
        (None, None),
        ("", None),
        ("OTHER", None),
    ],
)
def test_twilio_opt_out_type_maps_to_the_same_actions(
    value: str | None, action: KeywordAction | None
) -> None:
    assert from_opt_out_type(value) is action


_PUNCTUATION = st.text(alphabet=" .,!?;:-\"'()[]\n\t", max_size=5)


@given(
    word=st.sampled_from(STOP_WORDS + START_WORDS + HELP_WORDS),
    before=_PUNCTUATION,
    after=_PUNCTUATION,
    upper_mask=st.lists(st.booleans(), min_size=11, max_size=11),
)
def test_keyword_in_any_case_wrapped_in_any_punctuation_is_recognized(
    word: str, before: str, after: str, upper_mask: list[bool]
) -> None:
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(word, upper_mask, strict=False))
    assert classify_keyword(before + mixed + after) is classify_keyword(word)
    assert classify_keyword(word) is not None


@given(prefix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
def test_keyword_preceded_by_other_words_is_never_a_keyword(prefix: str) -> None:
    assert classify_keyword(f"{prefix} stop") is None
