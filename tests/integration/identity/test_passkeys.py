"""Passkeys on both backends: registration, a passkey as the second factor, step-up and
passwordless login, and every way an assertion must be refused."""

import pytest
from sqlalchemy import select

from bastion.identity.errors import (
    InvalidCredentials,
    MfaCodeInvalid,
    MfaRequired,
    NotAuthenticated,
    PasskeyAlreadyRegistered,
    PasskeyCloneSuspected,
    PasskeyInvalid,
    PasskeyNotFound,
    SessionCodeInvalid,
    StepUpRequired,
    UserNotFound,
)
from bastion.identity.guard import Admission, OpenDoor
from bastion.identity.models import WebAuthnChallenge, WebAuthnCredential
from tests.support.authenticator import SoftAuthenticator
from tests.support.identity import CLIENT, make_rig

PASSWORD = "correct horse battery staple"
EMAIL = "passkey@example.com"


def _call(rig, method, **kwargs):
    with rig.uow.begin() as session:
        return getattr(rig.identity, method)(session, **kwargs)


def _committing(rig, method, **kwargs):
    """Call like the edge: an audited refusal is committed, then re-raised."""
    with rig.uow.begin() as session:
        try:
            return getattr(rig.identity, method)(session, **kwargs)
        except (MfaRequired, MfaCodeInvalid, PasskeyCloneSuspected, InvalidCredentials):
            session.commit()
            raise


def _principal(rig, token):
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=token, via_cookie=False)


def _signup_and_login(rig, email=EMAIL):
    _call(rig, "signup", email=email, password=PASSWORD, name="Pat", client=CLIENT)
    issued = _call(rig, "login", email=email, password=PASSWORD, client=CLIENT)
    return _principal(rig, issued.token)


def _register(rig, principal, authenticator=None, name="Laptop"):
    authenticator = authenticator or SoftAuthenticator()
    options = _call(rig, "begin_passkey_registration", principal=principal)
    info = _call(
        rig,
        "finish_passkey_registration",
        principal=principal,
        credential=authenticator.create(options),
        name=name,
        client=CLIENT,
    )
    return authenticator, info


def _mfa_token(rig, email=EMAIL):
    with pytest.raises(MfaRequired) as required:
        _committing(rig, "login", email=email, password=PASSWORD, client=CLIENT)
    return required.value.details


def _passkey_mfa(rig, token, authenticator, **answer):
    options = _committing(rig, "begin_passkey_mfa", mfa_token=token, client=CLIENT)
    credential = authenticator.get(options, **answer)
    return credential, _committing(
        rig, "complete_mfa_with_passkey", mfa_token=token, credential=credential, client=CLIENT
    )


@pytest.fixture
def registered(rig):
    principal = _signup_and_login(rig)
    authenticator, info = _register(rig, principal)
    return principal, authenticator, info


def test_a_registered_passkey_is_stored_with_its_public_key_counter_and_name(rig, registered):
    principal, authenticator, info = registered
    [listed] = _call(rig, "list_passkeys", principal=principal)
    assert (listed.id, listed.name, listed.transports) == (
        info.id,
        "Laptop",
        ("internal", "hybrid"),
    )
    assert listed.last_used_at is None
    with rig.uow.begin() as session:
        row = session.scalar(select(WebAuthnCredential))
        challenge = session.scalar(select(WebAuthnChallenge))
    assert row.credential_id == authenticator.credential_id
    assert row.public_key == authenticator.cose_public_key()
    assert row.sign_count == 0
    # Only the challenge's digest is kept, and it is spent.
    assert len(challenge.challenge_hash) == 32
    assert challenge.used_at is not None
    assert "identity.passkey_registered" in rig.audit.actions()
    with rig.uow.begin() as session:
        assert rig.identity.account(session, principal=principal).mfa_enabled


def _principal_after_step_up(rig, principal, authenticator):
    options = _call(rig, "begin_passkey_step_up", principal=principal)
    _call(
        rig,
        "step_up_with_passkey",
        principal=principal,
        credential=authenticator.get(options),
        client=CLIENT,
    )
    return principal


def test_a_registration_answering_another_sessions_challenge_is_refused(rig):
    principal = _signup_and_login(rig)
    other = _principal(
        rig, _call(rig, "login", email=EMAIL, password=PASSWORD, client=CLIENT).token
    )
    options = _call(rig, "begin_passkey_registration", principal=principal)
    with pytest.raises(PasskeyInvalid):
        _call(
            rig,
            "finish_passkey_registration",
            principal=other,
            credential=SoftAuthenticator().create(options),
            name="x",
            client=CLIENT,
        )


def test_login_with_a_password_then_a_passkey_as_the_second_factor(rig, registered):
    _, authenticator, _ = registered
    details = _mfa_token(rig)
    assert details["factors"] == ["passkey"]
    _, issued = _passkey_mfa(rig, details["mfa_token"], authenticator)
    principal = _principal(rig, issued.token)
    assert principal.user_id == registered[0].user_id
    with rig.uow.begin() as session:
        row = session.scalar(select(WebAuthnCredential))
    assert row.sign_count == 1
    assert row.last_used_at is not None


def test_a_replayed_assertion_or_another_users_passkey_is_refused(rig, registered):
    _, authenticator, _ = registered
    mallory = _signup_and_login(rig, email="mallory@example.com")
    mallorys_key, _ = _register(rig, mallory)
    with pytest.raises(MfaCodeInvalid):  # Mallory's key for the victim's half-finished login
        _passkey_mfa(rig, _mfa_token(rig)["mfa_token"], mallorys_key)
    token = _mfa_token(rig)["mfa_token"]
    credential, _ = _passkey_mfa(rig, token, authenticator)
    # The same response again: for the same login, and for a fresh one.
    with pytest.raises(MfaCodeInvalid):
        _committing(
            rig, "complete_mfa_with_passkey", mfa_token=token, credential=credential, client=CLIENT
        )
    fresh = _mfa_token(rig)["mfa_token"]
    _committing(rig, "begin_passkey_mfa", mfa_token=fresh, client=CLIENT)
    with pytest.raises(MfaCodeInvalid):
        _committing(
            rig, "complete_mfa_with_passkey", mfa_token=fresh, credential=credential, client=CLIENT
        )


def test_a_response_for_another_origin_or_rp_id_is_refused(rig, registered):
    principal, authenticator, _ = registered
    for answer in (
        {"origin": "https://evil.example.com"},
        {"origin": "http://localhost"},
        {"rp_id": "evil.example.com"},
    ):
        token = _mfa_token(rig)["mfa_token"]
        with pytest.raises(MfaCodeInvalid):
            _passkey_mfa(rig, token, authenticator, **answer)
    with rig.uow.begin() as session:
        assert session.scalar(select(WebAuthnCredential.sign_count)) == 0
    # Registration too (the session has just proved its passkey: no step-up needed).
    _principal_after_step_up(rig, principal, authenticator)
    for answer in ({"origin": "https://evil.example.com"}, {"rp_id": "evil.example.com"}):
        options = _call(rig, "begin_passkey_registration", principal=principal)
        with pytest.raises(PasskeyInvalid):
            _call(
                rig,
                "finish_passkey_registration",
                principal=principal,
                credential=SoftAuthenticator().create(options, **answer),
                name="x",
                client=CLIENT,
            )
    assert len(_call(rig, "list_passkeys", principal=principal)) == 1


def test_a_cloned_authenticator_whose_counter_goes_back_is_refused_and_audited(rig, registered):
    _, authenticator, info = registered
    clone = authenticator.clone()  # the key extracted while the counter was 0
    _passkey_mfa(rig, _mfa_token(rig)["mfa_token"], authenticator)
    _passkey_mfa(rig, _mfa_token(rig)["mfa_token"], authenticator)
    clone.sign_count = 1  # behind the genuine authenticator's 2
    with pytest.raises(PasskeyCloneSuspected):
        _passkey_mfa(rig, _mfa_token(rig)["mfa_token"], clone)
    assert "identity.passkey_sign_count_regressed" in rig.audit.actions()
    event = next(e for e in rig.audit.events if e.action == "identity.passkey_sign_count_regressed")
    assert event.target == info.id
    with rig.uow.begin() as session:
        assert session.scalar(select(WebAuthnCredential.sign_count)) == 2


def test_delete_needs_a_recent_step_up_and_only_deletes_ones_own(rig, registered):
    principal, authenticator, info = registered
    rig.advance(seconds=301)  # the registration's proof has aged out
    with pytest.raises(StepUpRequired):
        _call(rig, "delete_passkey", principal=principal, passkey_id=info.id, client=CLIENT)
    # A step-up that does not verify counts against the session, like a wrong code.
    options = _call(rig, "begin_passkey_step_up", principal=principal)
    with pytest.raises(SessionCodeInvalid):
        _call(
            rig,
            "step_up_with_passkey",
            principal=principal,
            credential=authenticator.get(options, origin="https://evil.example.com"),
            client=CLIENT,
        )
    other = _signup_and_login(rig, email="other@example.com")
    _register(rig, other)
    with pytest.raises(PasskeyNotFound):
        _call(rig, "delete_passkey", principal=other, passkey_id=info.id, client=CLIENT)
    _principal_after_step_up(rig, principal, authenticator)
    with pytest.raises(PasskeyNotFound):
        _call(rig, "delete_passkey", principal=principal, passkey_id="nope", client=CLIENT)
    _call(rig, "delete_passkey", principal=principal, passkey_id=info.id, client=CLIENT)
    assert _call(rig, "list_passkeys", principal=principal) == []


def test_adding_a_second_factor_to_an_account_that_has_one_needs_a_step_up(rig, registered):
    principal, authenticator, _ = registered
    rig.advance(seconds=301)
    with pytest.raises(StepUpRequired):
        _call(rig, "begin_passkey_registration", principal=principal)
    _principal_after_step_up(rig, principal, authenticator)
    with pytest.raises(PasskeyAlreadyRegistered):
        _register(rig, principal, authenticator)
    _register(rig, principal, name="Phone")
    assert len(_call(rig, "list_passkeys", principal=principal)) == 2


def test_passwordless_login_with_a_discoverable_passkey_needs_user_verification(rig, registered):
    principal, authenticator, _ = registered
    options = _call(rig, "begin_passkey_login")
    issued = _call(rig, "login_with_passkey", credential=authenticator.get(options), client=CLIENT)
    assert _principal(rig, issued.token).user_id == principal.user_id
    options = _call(rig, "begin_passkey_login")
    with pytest.raises(InvalidCredentials):
        _committing(
            rig,
            "login_with_passkey",
            credential=authenticator.get(options, user_verified=False),
            client=CLIENT,
        )


class LockedGuard(OpenDoor):
    """Detection's answer for a locked account (e.g. after "this wasn't me")."""

    def admit(self, session, attempt):  # noqa: ARG002 - the LoginGuard signature
        return Admission.LOCKED


def test_an_account_locked_by_detection_cannot_log_in_with_a_passkey_either(engine, tmp_path):
    rig = make_rig(engine, tmp_path / "mail")
    principal = _signup_and_login(rig)
    authenticator, _ = _register(rig, principal)
    locked = make_rig(engine, tmp_path / "mail", keyring=rig.keyring, guard=LockedGuard())
    options = _call(locked, "begin_passkey_login")
    with pytest.raises(InvalidCredentials):
        _committing(
            locked, "login_with_passkey", credential=authenticator.get(options), client=CLIENT
        )
    assert locked.audit.events[-1].details == {"reason": "locked"}


def test_a_passkey_counts_as_the_second_factor_an_operator_must_enrol(rig):
    with rig.uow.begin() as session:
        link = rig.bootstrap.issue(session)
    _call(
        rig,
        "create_first_operator",
        bootstrap_token=link.token,
        email=EMAIL,
        password=PASSWORD,
        name=None,
        client=CLIENT,
    )
    token = _call(rig, "login", email=EMAIL, password=PASSWORD, client=CLIENT).token
    operator = _principal(rig, token)
    assert operator.must_enrol_mfa
    _register(rig, operator)
    assert not _principal(rig, token).must_enrol_mfa
    # ... and from then on, a password alone no longer signs the operator in.
    assert _mfa_token(rig)["factors"] == ["passkey"]


def test_an_operator_ends_every_session_of_another_user(rig):
    _call(rig, "signup", email=EMAIL, password=PASSWORD, name=None, client=CLIENT)
    tokens = [
        _call(rig, "login", email=EMAIL, password=PASSWORD, client=CLIENT).token for _ in "ab"
    ]
    user_id = _principal(rig, tokens[0]).user_id
    revoked = _call(
        rig, "revoke_user_sessions", user=EMAIL.upper(), actor_user_id="op-1", client=CLIENT
    )
    assert revoked.sessions == 2
    for token in tokens:
        with pytest.raises(NotAuthenticated):
            _principal(rig, token)
    event = rig.audit.events[-1]
    assert (event.action, event.actor_user_id, event.target) == (
        "identity.user_sessions_revoked",
        "op-1",
        user_id,
    )
    # By id as well; idempotent.
    again = _call(rig, "revoke_user_sessions", user=user_id, actor_user_id="op-1", client=CLIENT)
    assert again.sessions == 0
    for unknown in ("nobody@example.com", "not-an-id", "", "x" * 300):
        with pytest.raises(UserNotFound):
            _call(rig, "revoke_user_sessions", user=unknown, actor_user_id=None, client=CLIENT)
