"""New device or network: an e-mail with a "this wasn't me" link that revokes everything."""

import pyotp
import pytest
from sqlalchemy import event, select

from bastion.alerts.models import SecurityEventRow
from bastion.detection import LinkInvalid
from bastion.detection.models import KnownDevice
from bastion.identity import ClientInfo, InvalidCredentials, NotAuthenticated
from bastion.identity.errors import MfaRequired
from bastion.kernel.clock import as_utc
from tests.integration.detection.conftest import ALICE, PASSWORD
from tests.support.identity import last_token, read_mails

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase 77"
SAME_NETWORK = ClientInfo(ip="203.0.113.99", user_agent=ALICE.user_agent)
PHONE = ClientInfo(
    ip="192.0.2.10", user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1"
)


def _sign_in_mails(rig):
    return [m for m in read_mails(rig.mail_dir) if "New sign-in" in m["Subject"]]


def _authenticate(rig, token):
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=token, via_cookie=False)


def test_the_first_sign_in_and_a_known_device_on_the_same_network_send_nothing(rig):
    rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    rig.login(EMAIL, PASSWORD, SAME_NETWORK)
    assert _sign_in_mails(rig) == []


def _last_seen(rig, user_id):
    with rig.uow.begin() as session:
        (row,) = session.scalars(select(KnownDevice).where(KnownDevice.user_id == user_id)).all()
        return as_utc(row.last_seen_at)


def test_a_known_device_s_last_seen_time_moves_at_most_daily(rig):
    user_id = rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    first = _last_seen(rig, user_id)
    rig.advance(hours=23)
    rig.login(EMAIL, PASSWORD, SAME_NETWORK)
    assert _last_seen(rig, user_id) == first  # no write for a sign-in within the day
    rig.advance(hours=1)
    rig.login(EMAIL, PASSWORD)
    assert _last_seen(rig, user_id) == rig.clock.now()
    assert _sign_in_mails(rig) == []


def test_a_password_login_reads_its_device_with_its_admission(rig, engine):
    rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        rig.login(EMAIL, PASSWORD, SAME_NETWORK)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    device_reads = [s for s in statements if "known_devices" in s]
    # One statement answers block, lock and device; nothing reads the device again.
    assert len(device_reads) == 1
    assert "blocked_sources" in device_reads[0]
    assert "login_lockouts" in device_reads[0]


def test_a_new_device_is_mailed_once_and_stored_only_as_a_mac(rig):
    user_id = rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    rig.login(EMAIL, PASSWORD, PHONE)
    rig.login(EMAIL, PASSWORD, PHONE)
    (mail,) = _sign_in_mails(rig)
    assert "safari/ios" in mail.get_content()
    with rig.uow.begin() as session:
        rows = session.scalars(select(KnownDevice).where(KnownDevice.user_id == user_id)).all()
        events = session.scalars(
            select(SecurityEventRow).where(SecurityEventRow.type == "login.new_device")
        ).all()
    assert len(rows) == 2
    assert all(len(row.fingerprint) == 32 and b"192.0.2" not in row.fingerprint for row in rows)
    assert len(events) == 1


def test_this_wasnt_me_revokes_every_session_and_locks_sign_in_until_a_reset(rig):
    user_id = rig.signup(EMAIL)
    mine = rig.login(EMAIL, PASSWORD)
    theirs = rig.login(EMAIL, PASSWORD, PHONE)
    token = last_token(rig.mail_dir, to=EMAIL, subject_contains="New sign-in")
    with rig.uow.begin() as session:
        assert rig.detection.report(session, token=token, client=ALICE) == 2
    for issued in (mine, theirs):
        with pytest.raises(NotAuthenticated):
            _authenticate(rig, issued.token)
    # The right password no longer opens the account, from anywhere.
    with pytest.raises(InvalidCredentials):
        rig.login(EMAIL, PASSWORD)
    with rig.uow.begin() as session:
        (event,) = session.scalars(
            select(SecurityEventRow).where(SecurityEventRow.type == "login.reported")
        ).all()
    assert event.subject == user_id
    assert event.severity == 40
    # The link works once; the unlock link cannot end this lock.
    with pytest.raises(LinkInvalid), rig.uow.begin() as session:
        rig.detection.report(session, token=token, client=ALICE)
    reset = last_token(rig.mail_dir, to=EMAIL, subject_contains="Reset")
    rig.advance(seconds=1)
    with rig.uow.begin() as session:
        rig.identity.reset_password(session, token=reset, password=NEW_PASSWORD, client=ALICE)
    rig.advance(seconds=1)
    assert rig.login(EMAIL, NEW_PASSWORD).token


def test_a_report_token_is_not_an_unlock_token(rig):
    rig.signup(EMAIL)
    rig.login(EMAIL, PASSWORD)
    rig.login(EMAIL, PASSWORD, PHONE)
    token = last_token(rig.mail_dir, to=EMAIL, subject_contains="New sign-in")
    with pytest.raises(LinkInvalid), rig.uow.begin() as session:
        rig.detection.unlock(session, token=token, client=ALICE)


def _mfa_login(rig, client, secret):
    with rig.uow.begin() as session:
        try:
            rig.identity.login(session, email=EMAIL, password=PASSWORD, client=client)
        except MfaRequired as required:
            session.commit()  # an audited refusal, as the edge does
            token = required.details["mfa_token"]
        else:
            raise AssertionError("login did not ask for a second factor")
    code = pyotp.TOTP(secret).at(int(rig.clock.now().timestamp()))
    with rig.uow.begin() as session:
        rig.identity.complete_mfa(session, mfa_token=token, code=code, client=client)


def test_a_second_factor_login_from_a_new_device_is_mailed_once(rig):
    rig.signup(EMAIL)
    issued = rig.login(EMAIL, PASSWORD)
    with rig.uow.begin() as session:
        principal = rig.identity.authenticate(session, token=issued.token, via_cookie=False)
        secret = rig.identity.begin_totp(session, principal=principal, client=ALICE).secret
    rig.advance(seconds=30)
    code = pyotp.TOTP(secret).at(int(rig.clock.now().timestamp()))
    with rig.uow.begin() as session:
        rig.identity.confirm_totp(session, principal=principal, code=code, client=ALICE)
    rig.advance(seconds=30)
    _mfa_login(rig, ALICE, secret)  # known device: nothing
    assert _sign_in_mails(rig) == []
    rig.advance(seconds=30)
    _mfa_login(rig, PHONE, secret)
    rig.advance(seconds=30)
    _mfa_login(rig, PHONE, secret)
    (mail,) = _sign_in_mails(rig)
    assert "safari/ios" in mail.get_content()
