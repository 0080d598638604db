"""Keyring fixtures: a migrated database on each backend, a real local master key, a keyring."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.crypto import Keyring, LocalKeyProvider, create_key_file
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.kernel.clock import FrozenClock

TENANT = "7f1c2a9e-0d6b-4a53-9a51-3f4c7f0e1b2d"
OTHER_TENANT = "0b6e4d1c-3a2f-4e8d-9c7b-5a1e2f3d4c5b"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FrozenClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


@pytest.fixture
def master_key_file(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path)
    return path


@pytest.fixture
def make_keyring(engine, clock, master_key_file):
    def factory(key_file=master_key_file, **options):
        return Keyring(
            uow=UnitOfWork(engine),
            provider=LocalKeyProvider(key_file=key_file),
            clock=clock,
            **options,
        )

    return factory


@pytest.fixture
def keyring(make_keyring):
    keyring = make_keyring()
    keyring.initialise()
    keyring.provision_tenant(TENANT)
    keyring.provision_tenant(OTHER_TENANT)
    return keyring
