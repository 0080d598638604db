"""Sessions (expiry, revocation, CSRF) and password change/reset on both backends."""

import pytest
from sqlalchemy import select

from bastion.identity.errors import (
    AlreadyBootstrapped,
    BootstrapTokenInvalid,
    CsrfCheckFailed,
    CurrentPasswordWrong,
    InvalidCredentials,
    NotAuthenticated,
    PasswordReused,
    PasswordTooShort,
    SessionNotFound,
    TokenInvalid,
)
from bastion.identity.models import AuthSession, EmailToken, PasswordHistory, User
from bastion.kernel.ids import token_digest
from tests.support.identity import CLIENT, last_token, make_rig

PASSWORD = "correct horse battery staple"


def _signup(rig, email="alice@example.com"):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=email, password=PASSWORD, name=None, client=CLIENT
        )


def _login(rig, email="alice@example.com", password=PASSWORD):
    with rig.uow.begin() as session:
        return rig.identity.login(session, email=email, password=password, client=CLIENT)


def _auth(rig, token, **kwargs):
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=token, via_cookie=False, **kwargs)


def _call(rig, method, **kwargs):
    with rig.uow.begin() as session:
        return getattr(rig.identity, method)(session, client=CLIENT, **kwargs)


def test_sessions_are_stored_as_digests_and_each_login_gets_a_new_token(rig):
    _signup(rig)
    first, second = _login(rig), _login(rig)
    assert first.token != second.token
    assert len(first.token) >= 43
    with rig.uow.begin() as session:
        stored = session.scalars(select(AuthSession.token_hash)).all()
    assert sorted(stored) == sorted([token_digest(first.token), token_digest(second.token)])


def test_the_idle_timeout_ends_a_session(engine, tmp_path):
    rig = make_rig(engine, tmp_path / "m", session_idle_timeout_seconds=600)
    _signup(rig)
    token = _login(rig).token
    rig.advance(seconds=590)
    _auth(rig, token)  # activity moves the idle deadline
    rig.advance(seconds=590)
    _auth(rig, token)
    rig.advance(seconds=601)
    with pytest.raises(NotAuthenticated):
        _auth(rig, token)


def test_the_absolute_lifetime_ends_an_active_session(engine, tmp_path):
    rig = make_rig(
        engine,
        tmp_path / "m",
        session_idle_timeout_seconds=600,
        session_absolute_lifetime_seconds=3600,
    )
    _signup(rig)
    token = _login(rig).token
    for _ in range(6):
        rig.advance(seconds=500)
        _auth(rig, token)
    rig.advance(seconds=601)  # 3601 s after login, 101 s after the last request
    with pytest.raises(NotAuthenticated):
        _auth(rig, token)


def test_logout_and_revocation_take_effect_on_the_next_request(rig):
    _signup(rig)
    _signup(rig, email="mallory@example.com")
    a, b, c = (_login(rig) for _ in range(3))
    principal = _auth(rig, a.token)
    with rig.uow.begin() as session:
        listed = rig.identity.list_sessions(session, principal=principal)
    assert {s.id for s in listed} == {a.id, b.id, c.id}
    assert [s.current for s in listed if s.id == a.id] == [True]
    assert all(s.ip == "203.0.113.7" and s.user_agent == "pytest" for s in listed)

    _call(rig, "revoke_session", principal=principal, session_id=b.id)
    with pytest.raises(NotAuthenticated):
        _auth(rig, b.token)
    _auth(rig, a.token)
    # Someone else's session id is "not found", and stays alive.
    mallory = _auth(rig, _login(rig, email="mallory@example.com").token)
    with pytest.raises(SessionNotFound):
        _call(rig, "revoke_session", principal=mallory, session_id=c.id)
    _auth(rig, c.token)

    _call(rig, "logout", principal=_auth(rig, c.token))
    with pytest.raises(NotAuthenticated):
        _auth(rig, c.token)
    assert _call(rig, "revoke_all_sessions", principal=principal) == 1
    with pytest.raises(NotAuthenticated):
        _auth(rig, a.token)


def test_a_cookie_write_needs_the_sessions_csrf_token(rig):
    _signup(rig)
    issued = _login(rig)
    other = _login(rig)
    for wrong in (None, "", other.csrf_token, "x" * 500):
        with pytest.raises(CsrfCheckFailed):
            _auth(rig, issued.token, csrf_token=wrong, require_csrf=True)
    assert _auth(rig, issued.token, csrf_token=issued.csrf_token, require_csrf=True)


def test_password_reset_is_single_use_kills_every_session_and_expires(rig):
    _signup(rig)
    tokens = [_login(rig).token for _ in range(2)]
    _call(rig, "request_password_reset", email="ALICE@example.com")
    _call(rig, "request_password_reset", email="nobody@example.com")  # silently nothing
    reset = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Reset")
    with rig.uow.begin() as session:
        stored = session.scalar(
            select(EmailToken.token_hash).where(EmailToken.purpose == "reset_password")
        )
    assert stored == token_digest(reset)

    with pytest.raises(PasswordTooShort):
        _call(rig, "reset_password", token=reset, password="short")
    new_password = "a completely new passphrase"
    _call(rig, "reset_password", token=reset, password=new_password)
    for token in tokens:
        with pytest.raises(NotAuthenticated):
            _auth(rig, token)
    with pytest.raises(TokenInvalid):
        _call(rig, "reset_password", token=reset, password="yet another new passphrase")
    with pytest.raises(InvalidCredentials):
        _login(rig)
    _login(rig, password=new_password)

    _call(rig, "request_password_reset", email="alice@example.com")
    late = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Reset")
    rig.advance(minutes=30, seconds=1)
    with pytest.raises(TokenInvalid):
        _call(rig, "reset_password", token=late, password="too late passphrase here")


def test_a_verification_token_cannot_reset_a_password(rig):
    _signup(rig)
    verify = last_token(rig.mail_dir, to="alice@example.com", subject_contains="Confirm")
    with pytest.raises(TokenInvalid):
        _call(rig, "reset_password", token=verify, password="a completely new passphrase")


def test_password_change_needs_the_current_one_refuses_the_last_five_and_rotates_sessions(rig):
    _signup(rig)
    old = _login(rig)
    other = _login(rig)
    principal = _auth(rig, old.token)
    with pytest.raises(CurrentPasswordWrong):
        _call(
            rig,
            "change_password",
            principal=principal,
            current_password="nope",
            new_password="a completely new passphrase",
        )
    history = [PASSWORD]
    current = PASSWORD
    for n in range(5):
        new = f"passphrase number {n} for quokkas"
        issued = _call(
            rig,
            "change_password",
            principal=principal,
            current_password=current,
            new_password=new,
        )
        history.append(new)
        current = new
        principal = _auth(rig, issued.token)
    for token in (old.token, other.token):
        with pytest.raises(NotAuthenticated):
            _auth(rig, token)
    # The current one and the four before it are refused; the sixth-newest is allowed again.
    for reused in history[-5:]:
        with pytest.raises(PasswordReused):
            _call(
                rig,
                "change_password",
                principal=principal,
                current_password=current,
                new_password=reused,
            )
    _call(
        rig,
        "change_password",
        principal=principal,
        current_password=current,
        new_password=history[0],
    )
    with rig.uow.begin() as session:
        assert len(session.scalars(select(PasswordHistory)).all()) == 5


def test_the_first_operator_redeems_the_bootstrap_token_once(rig):
    with rig.uow.begin() as session:
        link = rig.bootstrap.issue(session)
    with pytest.raises(PasswordTooShort):
        _call(
            rig,
            "create_first_operator",
            bootstrap_token=link.token,
            email="root@example.com",
            password="short",
            name=None,
        )
    account = _call(
        rig,
        "create_first_operator",
        bootstrap_token=link.token,
        email="root@example.com",
        password=PASSWORD,
        name="Root",
    )
    assert account.is_operator
    with pytest.raises(BootstrapTokenInvalid):
        _call(
            rig,
            "create_first_operator",
            bootstrap_token=link.token,
            email="second@example.com",
            password=PASSWORD,
            name=None,
        )
    with rig.uow.begin() as session:
        fresh = rig.bootstrap.issue(session)
    with pytest.raises(AlreadyBootstrapped):
        _call(
            rig,
            "create_first_operator",
            bootstrap_token=fresh.token,
            email="second@example.com",
            password=PASSWORD,
            name=None,
        )
    with rig.uow.begin() as session:
        users = session.scalars(select(User)).all()
    assert [(u.is_operator, u.name) for u in users] == [(True, "Root")]
    assert "identity.operator_bootstrapped" in rig.audit.actions()
