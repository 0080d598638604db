"""Audit fixtures: a migrated database on each backend, the audit services and a test keyring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from bastion.audit import AuditEvent, AuditLog, AuditVerifier, Checkpointer
from bastion.db import make_engine, upgrade_to_head
from bastion.kernel.clock import FrozenClock
from bastion.settings import AuditSettings
from tests.support.audit import TestKeyring, keys_for

TENANT = "7f1c2a9e-0d6b-4a53-9a51-3f4c7f0e1b2d"
CHECKPOINT_EVERY = 10


class TickingClock(FrozenClock):
    """Moves one millisecond per reading, so events have distinct, increasing times."""

    def now(self) -> datetime:
        moment = super().now()
        self.set(moment + timedelta(milliseconds=1))
        return moment


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def keyring():
    return TestKeyring()


@pytest.fixture
def clock():
    return TickingClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


@pytest.fixture
def audit_settings():
    return AuditSettings(checkpoint_every_events=CHECKPOINT_EVERY, checkpoint_every_minutes=5)


@pytest.fixture
def audit_log(keyring, clock, audit_settings):
    return AuditLog(pseudonymizer=keyring, clock=clock, settings=audit_settings)


@pytest.fixture
def checkpoint_dir(tmp_path):
    return tmp_path / "audit-checkpoints"


@pytest.fixture
def checkpointer(engine, keyring, clock, audit_settings, checkpoint_dir):
    return Checkpointer(
        engine=engine,
        signer=keyring,
        clock=clock,
        settings=audit_settings,
        checkpoint_dir=checkpoint_dir,
    )


@pytest.fixture
def verifier(engine, keyring, checkpoint_dir):
    return AuditVerifier(engine=engine, keys=keys_for(keyring), checkpoint_dir=checkpoint_dir)


def event(number: int, tenant: str | None = TENANT, **overrides) -> AuditEvent:
    values = {
        "action": "record.updated",
        "tenant_id": tenant,
        "actor_user_id": f"user-{number % 3}",
        "target": f"record:{number}",
        "source_ip": "203.0.113.7",
        "user_agent": "pytest",
        "request_id": f"req-{number}",
        "details": {"number": number, "fields": ["name", "email"], "note": "café ☕"},
    }
    values.update(overrides)
    return AuditEvent(**values)


def append_many(engine, audit_log, count, *, tenant=TENANT, checkpointer=None, start=1):
    """Append ``count`` events, one transaction each, running the checkpoint job as it goes."""
    refs = []
    for number in range(start, start + count):
        with Session(engine) as session, session.begin():
            refs.append(audit_log.append(session, event(number, tenant)))
        if checkpointer is not None and number % CHECKPOINT_EVERY == 0:
            checkpointer.run()
    return refs
