"""``database.app_url``: the application role's URL, PostgreSQL only, a secret."""

import pytest
from pydantic import ValidationError

from bastion.settings import Settings

OWNER = "postgresql://owner@db.internal/bastion"
APP = "postgresql://bastion_app:s3cret@db.internal/bastion"


def test_an_application_role_needs_postgresql_on_both_urls(tmp_path):
    with pytest.raises(ValidationError, match=r"database\.app_url needs a PostgreSQL"):
        Settings(env="test", data_dir=tmp_path, database={"app_url": APP})  # SQLite owner
    with pytest.raises(ValidationError, match=r"database\.app_url needs a PostgreSQL"):
        Settings(env="test", data_dir=tmp_path, database_url=OWNER, database={"app_url": "x"})


def test_the_application_url_is_kept_secret(tmp_path):
    settings = Settings(
        env="test", data_dir=tmp_path, database_url=OWNER, database={"app_url": APP}
    )
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.model_dump_json()
    assert settings.database.app_url.get_secret_value() == APP


def test_it_comes_from_the_environment_like_every_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("BASTION_DATABASE_URL", OWNER)
    monkeypatch.setenv("BASTION_DATABASE__APP_URL", APP)
    settings = Settings(env="test", data_dir=tmp_path)
    assert settings.database.app_url.get_secret_value() == APP
