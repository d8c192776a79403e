from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.db.engine import make_engine


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://u@127.0.0.1:5432/db")
    monkeypatch.setenv("API_TOKENS", " tok-a , tok-b ,")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = Settings()
    assert settings.api_token_list == ["tok-a", "tok-b"]
    assert settings.db_pool_size == 7


def test_database_url_must_use_pg8000() -> None:
    with pytest.raises(ValidationError, match="postgresql\\+pg8000://"):
        Settings(database_url="postgresql://u@localhost/db")  # type: ignore[arg-type]


def test_database_url_and_cloud_sql_instance_are_mutually_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(database_url="postgresql+pg8000://u@h/db", instance_connection_name="p:r:i")  # type: ignore[arg-type]


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
