"""The purge deletes what no longer decides anything, and keeps what still does."""

import pytest
from sqlalchemy import func, select

from bastion.audit import AuditLog
from bastion.detection.models import BlockedSource, DetectionLink, KnownDevice, LoginLockout
from bastion.detection.purge import purge_expired
from bastion.identity import ClientInfo, InvalidCredentials
from bastion.settings import AuditSettings
from tests.integration.detection.conftest import PASSWORD

EMAIL = "alice@example.com"
PHONE = ClientInfo(ip="192.0.2.10", user_agent="Mozilla/5.0 (iPhone) Safari/604.1")
STUFFER = ClientInfo(ip="198.51.100.66", user_agent="x")


def _count(rig, model):
    with rig.uow.begin() as session:
        return session.scalar(select(func.count()).select_from(model))


def _purge(rig, keyring):
    audit_log = AuditLog(pseudonymizer=keyring, clock=rig.clock, settings=AuditSettings())
    return purge_expired(uow=rig.uow, audit_log=audit_log, clock=rig.clock)


def test_ended_rows_go_after_thirty_days_and_live_ones_stay(rig, keyring):
    rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    rig.login(EMAIL, PASSWORD, PHONE)  # a report link
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            rig.login(EMAIL, "wrong password entirely")  # a lock and an unlock link
    for n in range(4):
        with pytest.raises(InvalidCredentials):
            rig.login(f"user{n}@example.com", "leaked", STUFFER)  # a block
    assert _purge(rig, keyring) == 0
    rig.advance(days=31)
    # The block (1 h) and the lock (5 min) ended more than 30 days ago; the links did not.
    assert _purge(rig, keyring) == 2
    assert _count(rig, BlockedSource) == 0
    assert _count(rig, LoginLockout) == 0
    assert _count(rig, DetectionLink) == 2
    assert _count(rig, KnownDevice) == 2
    rig.advance(days=400)
    assert _purge(rig, keyring) == 2 + 2  # both links, both devices
    assert _count(rig, DetectionLink) == 0
    assert _count(rig, KnownDevice) == 0


def test_a_reported_lock_is_never_purged(rig, keyring):
    rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    rig.login(EMAIL, PASSWORD, PHONE)
    from tests.support.identity import last_token

    token = last_token(rig.mail_dir, to=EMAIL, subject_contains="New sign-in")
    with rig.uow.begin() as session:
        rig.detection.report(session, token=token, client=PHONE)
    rig.advance(days=1000)
    _purge(rig, keyring)
    assert _count(rig, LoginLockout) == 1
