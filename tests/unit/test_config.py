from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.db.engine import make_engine

# API tokens are at least 32 bytes.
TOKEN_A = "token-a-" + "a" * 32
TOKEN_B = "token-b-" + "b" * 32


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://u@127.0.0.1:5432/db")
    monkeypatch.setenv("API_TOKENS", f" {TOKEN_A} , {TOKEN_B} ,")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = Settings()
    assert settings.api_token_list == [TOKEN_A, TOKEN_B]
    assert settings.db_pool_size == 7


def test_database_url_must_use_pg8000() -> None:
    with pytest.raises(ValidationError, match="postgresql\\+pg8000://"):
        Settings(database_url="postgresql://u@localhost/db")


def test_database_url_and_cloud_sql_instance_are_mutually_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(database_url="postgresql+pg8000://u@h/db", instance_connection_name="p:r:i")


def test_no_api_token_configured_means_an_empty_token_list() -> None:
    assert Settings().api_token_list == []


def test_an_engine_without_any_database_configured_is_refused_with_a_clear_message() -> None:
    with pytest.raises(RuntimeError, match="DATABASE_URL or INSTANCE_CONNECTION_NAME"):
        make_engine(Settings())


def test_cloud_sql_engine_is_built_lazily_without_connecting() -> None:
    # Building the engine must not open a connection (cold starts; no credentials needed until used).
    engine = make_engine(Settings(instance_connection_name="proj:region:inst", db_pool_size=3))
    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_an_api_token_shorter_than_32_bytes_is_refused_at_start_up_saying_which_and_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_TOKENS", f"{TOKEN_A},short-token")
    with pytest.raises(ValidationError, match="token 2 of 2 is 11 bytes; each must be at least 32") as caught:
        Settings()
    assert "secrets.token_urlsafe(32)" in str(caught.value)
    assert "short-token" not in str(caught.value)


def test_a_32_byte_token_is_long_enough_counting_bytes_not_characters() -> None:
    assert Settings(api_tokens="x" * 32).api_token_list == ["x" * 32]
    with pytest.raises(ValidationError, match="is 30 bytes"):
        Settings(api_tokens="é" * 15)
