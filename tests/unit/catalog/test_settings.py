"""Settings: development defaults, production refuses to run without secrets, secrets hidden."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from catalog.settings import Settings

pytestmark = pytest.mark.unit


def test_development_defaults_point_at_the_local_stack(monkeypatch, tmp_path):
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SENTINEL_WAREHOUSE", raising=False)
    settings = Settings(_env_file=None, home=tmp_path)
    assert settings.database_dsn.endswith("@127.0.0.1:5432/sentinel")
    assert settings.warehouse_root == str(tmp_path / "warehouse")
    assert not settings.uses_object_store


def test_production_requires_secrets(monkeypatch):
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SENTINEL_REDIS_URL", raising=False)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, mode="production")
    assert "SENTINEL_DATABASE_URL" in str(err.value) and "SENTINEL_REDIS_URL" in str(err.value)


def test_secrets_never_appear_in_repr_or_dump(monkeypatch):
    monkeypatch.delenv("SENTINEL_WAREHOUSE", raising=False)
    monkeypatch.setenv("SENTINEL_DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("SENTINEL_S3_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY_ID", "AKIA")
    settings = Settings(_env_file=None)
    text = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in text and "s3cr3t-value" not in text
    assert settings.database_dsn == "postgresql://u:hunter2@db/x"
    assert settings.uses_object_store and settings.warehouse_root == "s3a://sentinel"
