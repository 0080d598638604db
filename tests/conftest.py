"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.settings import Settings
from tests.support.postgres import PostgresDatabases, require_postgres


@pytest.fixture(autouse=True)
def _no_bastion_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly, whatever the developer's shell exports."""
    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_databases(request: pytest.FixtureRequest) -> PostgresDatabases:
    require_postgres()
    databases = PostgresDatabases()
    # Dropped when pytest shuts down, not in the last test's teardown: each DROP DATABASE waits
    # for a checkpoint (~1.6 s here), and a whole session's worth exceeded that test's timeout.
    request.config.add_cleanup(databases.drop_all)
    return databases


@pytest.fixture(scope="session")
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """One fresh database for the whole test session, dropped afterwards."""
    return postgres_databases.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run a storage-level test on both backends, each time on an empty database.

    On PostgreSQL "empty database" is a fresh schema of the session's database, dropped after
    the test; tests that need a whole database of their own use ``postgres_databases.create()``.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    session_database: str = request.getfixturevalue("postgres_url")
    url, schema = databases.create_schema(session_database)
    yield url
    databases.drop_schema(session_database, schema)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"env": "test", "data_dir": tmp_path / "data"}
        values.update(overrides)
        return Settings(**values)

    return factory
