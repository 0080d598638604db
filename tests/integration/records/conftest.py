"""A real records service over a real keyring and audit log, on SQLite and PostgreSQL."""

from dataclasses import dataclass

import pytest

from bastion.access import SqlAccess
from bastion.audit import AuditLog
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.records import RecordsReencryptionTarget, SqlRecords
from bastion.settings import AuditSettings, RecordsSettings
from tests.support.identity import CLIENT, make_rig

PASSWORD = "correct horse battery staple"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def rig(engine, tmp_path):
    return make_rig(engine, tmp_path / "mail")


@pytest.fixture
def audit_log(rig):
    return AuditLog(pseudonymizer=rig.keyring, clock=rig.clock, settings=AuditSettings())


@pytest.fixture
def access(rig, audit_log):
    return SqlAccess(keys=rig.keyring, audit_log=audit_log, clock=rig.clock)


@pytest.fixture
def settings():
    return RecordsSettings(max_record_bytes=2048, purge_grace_seconds=3600)


@pytest.fixture
def records(rig, audit_log, engine, settings):
    rig.keyring.register_target(RecordsReencryptionTarget(engine=engine))
    return SqlRecords(keys=rig.keyring, audit_log=audit_log, clock=rig.clock, settings=settings)


@dataclass
class Tenant:
    """A tenant with its owner, and a helper running service calls in one transaction."""

    uow: UnitOfWork
    access: SqlAccess
    user_id: str
    tenant_id: str

    def context(self, session):
        return self.access.resolve(session, user_id=self.user_id, tenant_ref=self.tenant_id)

    def run(self, call, *args, **kwargs):
        with self.uow.begin() as session:
            return call(session, self.context(session), *args, **kwargs)


def make_tenant(rig, access, slug):
    with rig.uow.begin() as session:
        user = rig.identity.signup(
            session, email=f"{slug}@example.com", password=PASSWORD, name=None, client=CLIENT
        )
    with rig.uow.begin() as session:
        tenant = access.create_tenant(
            session, user_id=user.id, name=slug.title(), slug=slug, client=CLIENT
        )
    return Tenant(rig.uow, access, user.id, tenant.id)


@pytest.fixture
def acme(rig, access):
    return make_tenant(rig, access, "acme")


@pytest.fixture
def globex(rig, access):
    return make_tenant(rig, access, "globex")
