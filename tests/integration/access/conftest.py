import pytest

from bastion.access import SqlAccess, SqlInvitations
from bastion.audit import AuditLog
from bastion.db import make_engine, upgrade_to_head
from bastion.mail import DirectoryOutbox
from bastion.settings import AuditSettings
from tests.support.identity import make_rig
from tests.support.mail import DeliverOnCommit


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
def invitations(rig, access, tmp_path):
    """Invitations mailed (on commit) as files into ``tmp_path / "in"``."""
    return SqlInvitations(
        access=access,
        keys=rig.keyring,
        outbox=DeliverOnCommit(DirectoryOutbox(directory=tmp_path / "in", sender="b@example.com")),
        clock=rig.clock,
        base_url="https://x",
    )
