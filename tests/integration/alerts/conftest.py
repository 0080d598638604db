"""Alerts fixtures: a migrated database on each backend, a frozen clock, settings with sinks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.alerts import SqlSecurityEvents
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.kernel.clock import FrozenClock
from bastion.settings import AlertsSettings

WEBHOOK_SECRET = "w" * 40
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def uow(engine):
    return UnitOfWork(engine)


@pytest.fixture
def clock():
    return FrozenClock(START)


def alerts_settings(*sinks, **overrides):
    return AlertsSettings(sinks=list(sinks), **overrides)


@pytest.fixture
def make_events(clock):
    def factory(settings: AlertsSettings) -> SqlSecurityEvents:
        return SqlSecurityEvents(settings=settings, clock=clock)

    return factory
