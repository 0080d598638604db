"""A real identity service with the real login guard, over SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from limits.storage import MemoryStorage, storage_from_string

from bastion.alerts import SqlSecurityEvents
from bastion.audit import AuditLog
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.detection import Counters, Detection, SqlLoginGuard
from bastion.errors import AppError
from bastion.identity import ClientInfo, FirstOperatorBootstrap, SqlIdentity
from bastion.identity.events import AuditLogTrail
from bastion.identity.passwords import Argon2Parameters, PasswordHasher
from bastion.kernel.clock import FrozenClock
from bastion.mail import DirectoryOutbox
from bastion.settings import AlertsSettings, AuditSettings, DetectionSettings, IdentitySettings
from tests.support.identity import CHEAP_ARGON2, make_keyring
from tests.support.mail import DeliverOnCommit

REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery staple 42"
ALICE = ClientInfo(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
SMALL = {
    "account_failure_limit": 5,
    "lockout_seconds": 300,
    "source_failure_limit": 50,
    "stuffing_account_limit": 4,
    "delay_base_ms": 0,
}


@dataclass
class DetectionRig:
    identity: SqlIdentity
    guard: SqlLoginGuard
    detection: Detection
    uow: UnitOfWork
    clock: FrozenClock
    mail_dir: Path
    sleeps: list[float]

    def advance(self, **delta: float) -> None:
        self.clock.set(self.clock.now() + timedelta(**delta))

    def login(self, email: str, password: str, client: ClientInfo = ALICE):
        """Like the edge: an audited refusal is committed, then raised."""
        refusal: AppError | None = None
        with self.uow.begin() as session:
            try:
                return self.identity.login(session, email=email, password=password, client=client)
            except AppError as exc:
                if not exc.audited_refusal:
                    raise
                refusal = exc
        raise refusal

    def signup(self, email: str) -> str:
        with self.uow.begin() as session:
            account = self.identity.signup(
                session, email=email, password=PASSWORD, name=None, client=ALICE
            )
        return account.id


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def keyring(engine, tmp_path):
    return make_keyring(engine, tmp_path / "master.key")


def redis_counters(prefix: str) -> Counters:
    storage = storage_from_string(
        REDIS_URL, wrap_exceptions=True, key_prefix=prefix, socket_timeout=0.5
    )
    return Counters(storage)


def build_rig(engine, keyring, mail_dir: Path, counters: Counters, **settings) -> DetectionRig:
    clock = FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    mail = DeliverOnCommit(DirectoryOutbox(directory=mail_dir, sender="Bastion <b@example.com>"))
    events = SqlSecurityEvents(settings=AlertsSettings(), clock=clock)
    audit_log = AuditLog(pseudonymizer=keyring, clock=clock, settings=AuditSettings())
    sleeps: list[float] = []
    guard = SqlLoginGuard(
        settings=DetectionSettings(**{**SMALL, **settings}),
        counters=counters,
        keys=keyring,
        clock=clock,
        mail=mail,
        events=events,
        base_url="https://bastion.example.com",
        sleep=sleeps.append,
    )
    identity_settings = IdentitySettings(**CHEAP_ARGON2)
    identity = SqlIdentity(
        settings=identity_settings,
        hasher=PasswordHasher(Argon2Parameters(memory_kib=64, time_cost=1, parallelism=1)),
        keys=keyring,
        clock=clock,
        outbox=mail,
        audit=AuditLogTrail(audit_log),
        bootstrap=FirstOperatorBootstrap(clock=clock),
        base_url="https://bastion.example.com",
        guard=guard,
    )
    detection = Detection(accounts=identity, events=events, audit_log=audit_log, clock=clock)
    return DetectionRig(identity, guard, detection, UnitOfWork(engine), clock, mail_dir, sleeps)


@pytest.fixture
def rig(engine, keyring, tmp_path) -> DetectionRig:
    return build_rig(engine, keyring, tmp_path / "mail", Counters(MemoryStorage()))


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{uuid.uuid4().hex}"
