"""Lockout after N failures: refused like a wrong password, expiry, unlock link, no oracle."""

import pytest
from sqlalchemy import select

from bastion.alerts.models import SecurityEventRow
from bastion.detection import LinkInvalid
from bastion.detection.models import LoginLockout
from bastion.identity import InvalidCredentials
from bastion.identity.models import User
from bastion.observability.metrics import LOCKOUTS
from tests.integration.detection.conftest import ALICE, PASSWORD
from tests.support.identity import last_token, read_mails

EMAIL = "alice@example.com"


def _fail(rig, times, email=EMAIL, client=ALICE):
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            rig.login(email, "wrong password entirely", client)


def _events(rig, kind):
    with rig.uow.begin() as session:
        return session.scalars(select(SecurityEventRow).where(SecurityEventRow.type == kind)).all()


def test_n_failures_lock_the_account_and_the_right_password_is_refused_like_a_wrong_one(rig):
    user_id = rig.signup(EMAIL)
    locks_before = LOCKOUTS._value.get()
    _fail(rig, 5)
    with pytest.raises(InvalidCredentials) as refused:
        rig.login(EMAIL, PASSWORD)
    assert refused.value.code == "identity.invalid_credentials"
    with rig.uow.begin() as session:
        lock = session.get(LoginLockout, user_id)
        assert lock is not None
        assert lock.failures == 5
    (event,) = _events(rig, "login.locked")
    assert event.subject == user_id
    assert event.source == ALICE.ip
    assert LOCKOUTS._value.get() == locks_before + 1
    assert last_token(rig.mail_dir, to=EMAIL, subject_contains="locked")


def test_the_lock_expires_and_the_right_password_then_works(rig):
    rig.signup(EMAIL)
    _fail(rig, 5)
    rig.advance(seconds=299)
    with pytest.raises(InvalidCredentials):
        rig.login(EMAIL, PASSWORD)
    rig.advance(seconds=2)
    assert rig.login(EMAIL, PASSWORD).token


def test_a_success_forgives_earlier_failures(rig):
    rig.signup(EMAIL)
    _fail(rig, 4)
    rig.login(EMAIL, PASSWORD)
    _fail(rig, 4)
    assert rig.login(EMAIL, PASSWORD).token


def test_the_unlock_link_ends_the_lock_once(rig):
    rig.signup(EMAIL)
    _fail(rig, 5)
    token = last_token(rig.mail_dir, to=EMAIL, subject_contains="locked")
    with rig.uow.begin() as session:
        rig.detection.unlock(session, token=token, client=ALICE)
    assert rig.login(EMAIL, PASSWORD).token
    with pytest.raises(LinkInvalid), rig.uow.begin() as session:
        rig.detection.unlock(session, token=token, client=ALICE)


def test_an_old_unused_unlock_link_does_not_lift_a_later_lock(rig):
    rig.signup(EMAIL)
    _fail(rig, 5)
    first_link = last_token(rig.mail_dir, to=EMAIL, subject_contains="locked")
    rig.advance(seconds=301)  # the first lock runs out unused; new failures lock again
    _fail(rig, 5)
    second_link = last_token(rig.mail_dir, to=EMAIL, subject_contains="locked")
    assert second_link != first_link

    with rig.uow.begin() as session:
        rig.detection.unlock(session, token=first_link, client=ALICE)
    with pytest.raises(InvalidCredentials):  # still locked: the old link answered nothing
        rig.login(EMAIL, PASSWORD)
    with rig.uow.begin() as session:
        rig.detection.unlock(session, token=second_link, client=ALICE)
    assert rig.login(EMAIL, PASSWORD).token


def test_a_made_up_or_oversized_unlock_token_changes_nothing(rig):
    user_id = rig.signup(EMAIL)
    _fail(rig, 5)
    for token in ("x" * 43, "y" * 5000, ""):
        with pytest.raises(LinkInvalid), rig.uow.begin() as session:
            rig.detection.unlock(session, token=token, client=ALICE)
    with rig.uow.begin() as session:
        assert session.get(LoginLockout, user_id).released_at is None


def test_an_unknown_account_is_refused_exactly_like_a_locked_one_and_nobody_is_mailed(rig):
    rig.signup(EMAIL)
    _fail(rig, 5)
    _fail(rig, 5, email="nobody@example.com")
    for email in (EMAIL, "nobody@example.com"):
        with pytest.raises(InvalidCredentials) as refused:
            rig.login(email, PASSWORD)
        assert refused.value.detail == InvalidCredentials.public_message
    recipients = [str(m["To"]) for m in read_mails(rig.mail_dir)]
    assert not any("nobody" in r for r in recipients)


def test_failures_past_the_limit_are_not_even_verified(rig, monkeypatch):
    user_id = rig.signup(EMAIL)
    _fail(rig, 5)
    with rig.uow.begin() as session:
        real_hash = session.get(User, user_id).password_hash
    verified = []
    real_verify = rig.identity._hasher.verify
    monkeypatch.setattr(
        rig.identity._hasher, "verify", lambda h, p: verified.append(h) or real_verify(h, p)
    )
    _fail(rig, 20)
    assert verified  # the dummy hash: the same cost as a real verification
    assert real_hash not in verified


def test_progressive_delay_grows_from_the_second_failure_and_is_capped(engine, keyring, tmp_path):
    from limits.storage import MemoryStorage

    from bastion.detection import Counters
    from tests.integration.detection.conftest import build_rig

    rig = build_rig(
        engine,
        keyring,
        tmp_path / "mail",
        Counters(MemoryStorage()),
        delay_base_ms=100,
        delay_max_ms=300,
        account_failure_limit=10,
    )
    rig.signup(EMAIL)
    _fail(rig, 5)
    assert rig.sleeps == [0.1, 0.2, 0.3, 0.3]
