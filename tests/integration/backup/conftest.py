"""Backup fixtures: a real SQLite installation (master key, keyring, audit, migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.kernel.clock import FrozenClock
from tests.support.backup import create_app_table, insert_rows, installation

TENANT = "7f1c2a9e-0d6b-4a53-9a51-3f4c7f0e1b2d"
OTHER_TENANT = "0b6e4d1c-3a2f-4e8d-9c7b-5a1e2f3d4c5b"


@pytest.fixture
def clock():
    return FrozenClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(make_settings, tmp_path):
    return make_settings(backup={"zstd_threads": 1}, data_dir=tmp_path / "data")


@pytest.fixture
def container(settings):
    container = installation(settings)
    create_app_table(container.engine)
    insert_rows(container.engine, 1, 500)
    yield container
    container.engine.dispose()


@pytest.fixture
def service(container):
    return container.backup
