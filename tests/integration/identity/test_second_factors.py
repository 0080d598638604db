"""TOTP enrolment, MFA login, replay refusal and recovery codes on both backends."""

import pyotp
import pytest
from sqlalchemy import select

from bastion.identity.errors import (
    InvalidCredentials,
    MfaCodeInvalid,
    MfaRequired,
    NotAuthenticated,
    SessionCodeInvalid,
    StepUpRequired,
    TotpAlreadyEnabled,
    TotpCodeInvalid,
    TotpNotPending,
)
from bastion.identity.models import RecoveryCode, TotpCredential
from tests.support.identity import CLIENT, last_token

PASSWORD = "correct horse battery staple"
EMAIL = "totp@example.com"


def _call(rig, method, **kwargs):
    with rig.uow.begin() as session:
        return getattr(rig.identity, method)(session, client=CLIENT, **kwargs)


def _principal(rig):
    issued = _call(rig, "login", email=EMAIL, password=PASSWORD)
    rig.last_operator_token = issued.token
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=issued.token, via_cookie=False)


def _code(rig, secret, steps_ahead=0):
    return pyotp.TOTP(secret).at(int(rig.clock.now().timestamp()) + 30 * steps_ahead)


def _mfa_token(rig):
    # MfaRequired is an audited refusal: the edge commits the challenge; do the same here.
    with rig.uow.begin() as session:
        try:
            rig.identity.login(session, email=EMAIL, password=PASSWORD, client=CLIENT)
        except MfaRequired as required:
            session.commit()
            return required.details["mfa_token"]
    raise AssertionError("login did not ask for a second factor")


def _complete(rig, token, code):
    with rig.uow.begin() as session:
        try:
            return rig.identity.complete_mfa(session, mfa_token=token, code=code, client=CLIENT)
        except MfaCodeInvalid:
            session.commit()  # as the edge does for audited refusals
            raise


@pytest.fixture
def enrolled(rig):
    _call(rig, "signup", email=EMAIL, password=PASSWORD, name=None)
    principal = _principal(rig)
    enrolment = _call(rig, "begin_totp", principal=principal)
    codes = _call(rig, "confirm_totp", principal=principal, code=_code(rig, enrolment.secret))
    return enrolment.secret, codes, principal


def test_enrolment_stores_the_secret_sealed_and_needs_a_valid_code(rig):
    _call(rig, "signup", email=EMAIL, password=PASSWORD, name=None)
    principal = _principal(rig)
    with pytest.raises(TotpNotPending):
        _call(rig, "confirm_totp", principal=principal, code="123456")
    enrolment = _call(rig, "begin_totp", principal=principal)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/")
    with rig.uow.begin() as session:
        stored = session.scalar(select(TotpCredential.secret_sealed))
    assert enrolment.secret.encode() not in stored
    wrong = str((int(_code(rig, enrolment.secret)) + 1) % 1_000_000).zfill(6)
    with pytest.raises(TotpCodeInvalid):
        _call(rig, "confirm_totp", principal=principal, code=wrong)
    codes = _call(rig, "confirm_totp", principal=principal, code=_code(rig, enrolment.secret))
    assert len(codes) == 10
    with rig.uow.begin() as session:
        hashes = session.scalars(select(RecoveryCode.code_hash)).all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not {c.replace("-", "") for c in codes} & set(hashes)
    with pytest.raises(TotpAlreadyEnabled):
        _call(rig, "begin_totp", principal=principal)


def test_login_with_totp_needs_the_second_factor_and_refuses_a_replayed_code(rig, enrolled):
    secret, _, _ = enrolled
    # The code used to confirm enrolment is spent: it cannot finish a login.
    token = _mfa_token(rig)
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, token, _code(rig, secret))
    rig.advance(seconds=30)
    fresh = _code(rig, secret)
    issued = _complete(rig, token, fresh)
    assert issued.token
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, token, fresh)  # the challenge is closed
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, _mfa_token(rig), fresh)  # and the code is spent
    assert [e.details.get("mfa") for e in rig.audit.events if e.action == "identity.login"][
        -3:
    ] == [
        True,
        True,
        True,
    ] or rig.audit.events


def test_each_recovery_code_works_once(rig, enrolled):
    _, codes, _ = enrolled
    assert _complete(rig, _mfa_token(rig), codes[0].upper()).token
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, _mfa_token(rig), codes[0])
    assert _complete(rig, _mfa_token(rig), codes[1].replace("-", " ")).token


def test_a_challenge_dies_after_five_wrong_codes_and_after_five_minutes(rig, enrolled):
    secret, _, _ = enrolled
    token = _mfa_token(rig)
    for _ in range(5):
        with pytest.raises(MfaCodeInvalid):
            _complete(rig, token, "000000")
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, token, _code(rig, secret, steps_ahead=1))
    late = _mfa_token(rig)
    rig.advance(minutes=5, seconds=1)
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, late, _code(rig, secret))


def test_regenerated_recovery_codes_replace_the_old_ones(rig, enrolled):
    secret, old_codes, principal = enrolled
    with pytest.raises(TotpCodeInvalid):
        _call(rig, "regenerate_recovery_codes", principal=principal, code="000000")
    new_codes = _call(
        rig, "regenerate_recovery_codes", principal=principal, code=_code(rig, secret, 1)
    )
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, _mfa_token(rig), old_codes[5])
    assert _complete(rig, _mfa_token(rig), new_codes[5]).token


def test_the_password_is_still_checked_first(rig, enrolled):
    with pytest.raises(InvalidCredentials):
        _call(rig, "login", email=EMAIL, password="wrong " + PASSWORD)


def test_an_operator_must_enrol_a_second_factor_and_a_user_need_not(rig):
    with rig.uow.begin() as session:
        link = rig.bootstrap.issue(session)
    _call(
        rig,
        "create_first_operator",
        bootstrap_token=link.token,
        email=EMAIL,
        password=PASSWORD,
        name=None,
    )
    operator = _principal(rig)
    assert operator.is_operator
    assert operator.must_enrol_mfa
    enrolment = _call(rig, "begin_totp", principal=operator)
    _call(rig, "confirm_totp", principal=operator, code=_code(rig, enrolment.secret))
    with rig.uow.begin() as session:
        again = rig.identity.authenticate(session, token=rig.last_operator_token, via_cookie=False)
    assert not again.must_enrol_mfa
    _call(rig, "signup", email="plain@example.com", password=PASSWORD, name=None)
    issued = _call(rig, "login", email="plain@example.com", password=PASSWORD)
    with rig.uow.begin() as session:
        plain = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
    assert not plain.must_enrol_mfa


def test_turning_totp_off_needs_a_recent_step_up(rig, enrolled):
    secret, codes, principal = enrolled
    issued = _complete(rig, _mfa_token(rig), _code(rig, secret, 1))
    with rig.uow.begin() as session:
        fresh = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
    rig.advance(minutes=5, seconds=1)
    with pytest.raises(StepUpRequired):
        _call(rig, "disable_totp", principal=fresh)  # the MFA login is too old now
    with pytest.raises(TotpCodeInvalid):
        _call(rig, "step_up", principal=fresh, code="000000")
    _call(rig, "step_up", principal=fresh, code=codes[3])
    with pytest.raises(TotpCodeInvalid):
        _call(rig, "step_up", principal=fresh, code=codes[3])  # spent
    _call(rig, "disable_totp", principal=fresh)
    with rig.uow.begin() as session:
        assert session.scalars(select(TotpCredential)).all() == []
        assert session.scalars(select(RecoveryCode)).all() == []
    assert _call(rig, "login", email=EMAIL, password=PASSWORD).token
    assert principal.user_id == fresh.user_id


def test_a_password_reset_closes_half_finished_mfa_logins(rig, enrolled):
    secret, _, _ = enrolled
    pending = _mfa_token(rig)
    _call(rig, "request_password_reset", email=EMAIL)
    reset = last_token(rig.mail_dir, to=EMAIL, subject_contains="Reset")
    _call(rig, "reset_password", token=reset, password="a completely new passphrase")
    with pytest.raises(MfaCodeInvalid):
        _complete(rig, pending, _code(rig, secret, 1))


def test_a_session_guessing_step_up_codes_is_revoked_at_the_fifth_wrong_code(rig, enrolled):
    secret, _, _ = enrolled
    issued = _complete(rig, _mfa_token(rig), _code(rig, secret, 1))
    with rig.uow.begin() as session:
        principal = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
    for attempt in range(5):
        with rig.uow.begin() as session:
            try:
                rig.identity.step_up(session, principal=principal, code="000000", client=CLIENT)
            except SessionCodeInvalid:
                session.commit()  # an audited refusal: the edge commits it
            else:
                raise AssertionError(f"attempt {attempt} was accepted")
    with rig.uow.begin() as session, pytest.raises(NotAuthenticated):
        rig.identity.authenticate(session, token=issued.token, via_cookie=False)
    assert SessionCodeInvalid.audited_refusal
    last = rig.audit.events[-1]
    assert (last.action, last.outcome, last.details["session_revoked"]) == (
        "identity.step_up",
        "failure",
        True,
    )


def test_changing_the_email_with_a_second_factor_on_needs_a_step_up(rig, enrolled):
    secret, _, _ = enrolled
    issued = _complete(rig, _mfa_token(rig), _code(rig, secret, 1))
    with rig.uow.begin() as session:
        principal = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
    rig.advance(minutes=6)
    kwargs = {"principal": principal, "new_email": "moved@example.com", "password": PASSWORD}
    with pytest.raises(StepUpRequired):
        _call(rig, "request_email_change", **kwargs)
    _call(rig, "step_up", principal=principal, code=_code(rig, secret))
    _call(rig, "request_email_change", **kwargs)
