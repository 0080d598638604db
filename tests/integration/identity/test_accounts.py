"""Accounts on both backends: sign-up, verification, login, enumeration safety, disable."""

import pytest
from sqlalchemy import select

from bastion.crypto import IntegrityCheckError
from bastion.identity.errors import (
    CurrentPasswordWrong,
    EmailTaken,
    InvalidCredentials,
    NotAuthenticated,
    PasswordTooCommon,
    SignupClosed,
    TokenInvalid,
)
from bastion.identity.keys import open_email
from bastion.identity.models import User
from tests.support.identity import CLIENT, last_token, make_rig, read_mails

PASSWORD = "correct horse battery staple"


def _signup(rig, email="Alice@Example.com", password=PASSWORD, name="Alice"):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=email, password=password, name=name, client=CLIENT
        )


def _login(rig, email="alice@example.com", password=PASSWORD):
    with rig.uow.begin() as session:
        return rig.identity.login(session, email=email, password=password, client=CLIENT)


def _auth(rig, token, **kwargs):
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=token, via_cookie=False, **kwargs)


def test_signup_mails_a_single_use_verification_token(rig):
    account = _signup(rig)
    assert account.email == "Alice@example.com"
    assert not account.email_verified
    token = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Confirm")
    with rig.uow.begin() as session:
        rig.identity.verify_email(session, token=token, client=CLIENT)
    with rig.uow.begin() as session, pytest.raises(TokenInvalid):
        rig.identity.verify_email(session, token=token, client=CLIENT)
    issued = _login(rig)
    with rig.uow.begin() as session:
        principal = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
        assert rig.identity.account(session, principal=principal).email_verified
    assert rig.audit.actions()[:3] == [
        "identity.signup",
        "identity.email_verified",
        "identity.login",
    ]


def test_the_verification_token_expires(rig):
    _signup(rig)
    token = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Confirm")
    rig.advance(hours=24, seconds=1)
    with rig.uow.begin() as session, pytest.raises(TokenInvalid):
        rig.identity.verify_email(session, token=token, client=CLIENT)


def test_the_email_is_unique_whatever_its_case(rig):
    _signup(rig)
    with pytest.raises(EmailTaken):
        _signup(rig, email="ALICE@example.COM")


def test_a_refused_password_writes_nothing(rig, engine):
    with pytest.raises(PasswordTooCommon):
        _signup(rig, password="password1234")
    with rig.uow.begin() as session:
        assert session.scalars(select(User)).all() == []
    assert read_mails(rig.mail_dir) == []
    assert rig.audit.events == []


def test_the_email_is_stored_sealed_with_a_blind_index_never_in_clear(rig, engine):
    account = _signup(rig)
    with engine.connect() as connection:
        raw = b"".join(
            bytes(str(value), "utf-8") if not isinstance(value, bytes) else value
            for row in connection.exec_driver_sql("SELECT * FROM users").all()
            for value in row
        )
    assert b"example.com" not in raw.lower()
    with rig.uow.begin() as session:
        user = session.get(User, account.id)
        assert len(user.email_index) == 32
        # Bound to the user id: the ciphertext cannot be moved to another row.
        with pytest.raises(IntegrityCheckError):
            open_email(rig.keyring, "another-user-id", user.email_sealed)
        assert open_email(rig.keyring, account.id, user.email_sealed) == "Alice@example.com"


def test_invitation_only_signup_is_refused_clearly(engine, tmp_path):
    closed = make_rig(engine, tmp_path / "mail", signup="invitation")
    with pytest.raises(SignupClosed) as caught:
        _signup(closed)
    assert caught.value.code == "identity.signup_closed"


def test_unknown_email_wrong_password_and_disabled_account_fail_alike(rig):
    _signup(rig)
    _signup(rig, email="bob@example.com", name="Bob")
    with rig.uow.begin() as session:
        rig.identity.disable_user(
            session, email="bob@example.com", actor_user_id=None, client=CLIENT
        )
    refusals = []
    for email, password in [
        ("nobody@example.com", PASSWORD),
        ("alice@example.com", "wrong " + PASSWORD),
        ("bob@example.com", PASSWORD),
        ("not an address", PASSWORD),
    ]:
        with pytest.raises(InvalidCredentials) as caught:
            _login(rig, email=email, password=password)
        refusals.append((caught.value.code, caught.value.detail, dict(caught.value.details)))
    assert len(set(map(str, refusals))) == 1
    failures = [e for e in rig.audit.events if e.outcome == "failure"]
    assert [e.details["reason"] for e in failures] == [
        "unknown_account",
        "wrong_password",
        "disabled",
        "unknown_account",
    ]
    for event in rig.audit.events:
        assert PASSWORD not in str(event.details)


def test_disabling_an_account_kills_every_session_at_once(rig):
    _signup(rig)
    tokens = [_login(rig).token for _ in range(3)]
    with rig.uow.begin() as session:
        rig.identity.disable_user(
            session, email="ALICE@example.com", actor_user_id=None, client=CLIENT
        )
    for token in tokens:
        with pytest.raises(NotAuthenticated):
            _auth(rig, token)
    assert rig.audit.events[-1].details == {"sessions_revoked": 3, "api_keys_revoked": 0}


def test_a_login_rehashes_when_the_argon2_parameters_change(engine, tmp_path):
    old = make_rig(engine, tmp_path / "mail")
    _signup(old)
    with old.uow.begin() as session:
        before = session.scalar(select(User.password_hash))
    assert "$m=64,t=1,p=1$" in before
    stronger = make_rig(
        engine, tmp_path / "mail", keyring=old.keyring, argon2_memory_kib=128, argon2_time_cost=2
    )
    _login(stronger)
    with stronger.uow.begin() as session:
        after = session.scalar(select(User.password_hash))
    assert "$m=128,t=2,p=1$" in after
    assert stronger.audit.events[-1].details["rehashed"] is True
    _login(stronger)  # the new hash verifies, and needs no further rehash
    assert stronger.audit.events[-1].details["rehashed"] is False


def test_changing_the_email_needs_the_password_and_the_new_address_confirms_it(rig):
    _signup(rig)
    issued = _login(rig)
    principal = _auth(rig, issued.token)

    def request(new_email, password=PASSWORD):
        with rig.uow.begin() as session:
            rig.identity.request_email_change(
                session, principal=principal, new_email=new_email, password=password, client=CLIENT
            )

    with pytest.raises(CurrentPasswordWrong):
        request("alice.new@example.org", password="wrong " + PASSWORD)
    _signup(rig, email="taken@example.com", name="Taken")
    with pytest.raises(EmailTaken):
        request("TAKEN@example.com")
    request("Alice.New@Example.ORG")
    notice = [m for m in read_mails(rig.mail_dir) if "being changed" in m["Subject"]]
    assert [a.addr_spec for a in notice[-1]["To"].addresses] == ["Alice@example.com"]
    _login(rig)  # nothing changed yet
    token = last_token(rig.mail_dir, to="alice.new@example.org", subject_contains="new e-mail")
    with rig.uow.begin() as session:
        rig.identity.verify_email(session, token=token, client=CLIENT)
    with pytest.raises(InvalidCredentials):
        _login(rig)
    _login(rig, email="alice.new@EXAMPLE.org")
    with rig.uow.begin() as session:
        assert rig.identity.account(session, principal=principal).email == "Alice.New@example.org"
    with rig.uow.begin() as session, pytest.raises(TokenInvalid):
        rig.identity.verify_email(session, token=token, client=CLIENT)
    assert "identity.email_changed" in rig.audit.actions()


def test_a_password_reset_cancels_a_pending_email_change(rig):
    _signup(rig)
    principal = _auth(rig, _login(rig).token)
    with rig.uow.begin() as session:
        rig.identity.request_email_change(
            session,
            principal=principal,
            new_email="hijacker@example.net",
            password=PASSWORD,
            client=CLIENT,
        )
    change = last_token(rig.mail_dir, to="hijacker@example.net", subject_contains="new e-mail")
    with rig.uow.begin() as session:
        rig.identity.request_password_reset(session, email="alice@example.com", client=CLIENT)
    reset = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Reset")
    with rig.uow.begin() as session:
        rig.identity.reset_password(
            session, token=reset, password="a completely new passphrase", client=CLIENT
        )
    with rig.uow.begin() as session, pytest.raises(TokenInvalid):
        rig.identity.verify_email(session, token=change, client=CLIENT)
