"""Invitations by e-mail on SQLite and PostgreSQL: single use, expiry, address binding, audit."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.access import (
    AlreadyMember,
    InvitationInvalid,
    InvitationNotFound,
    PermissionDenied,
    Role,
    SqlInvitations,
    TenantNotFound,
)
from bastion.access.models import InvitationRow
from bastion.audit import AuditQuery
from bastion.mail import DirectoryOutbox
from tests.support.identity import CLIENT, last_token
from tests.support.mail import DeliverOnCommit

PASSWORD = "correct horse battery staple"


@pytest.fixture
def invitations(rig, access, tmp_path):
    outbox = DeliverOnCommit(
        DirectoryOutbox(directory=tmp_path / "invites", sender="Bastion <b@example.com>")
    )
    return SqlInvitations(
        access=access, keys=rig.keyring, outbox=outbox, clock=rig.clock, base_url="https://x"
    )


def _user(rig, email):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=email, password=PASSWORD, name=None, client=CLIENT
        ).id


@pytest.fixture
def tenant(rig, access):
    owner = _user(rig, "owner@example.com")
    with rig.uow.begin() as session:
        access.create_tenant(session, user_id=owner, name="Acme", slug="acme", client=CLIENT)
    with rig.uow.begin() as session:
        return access.resolve(session, user_id=owner, tenant_ref="acme")


def _invite(rig, invitations, context, email="New.Person@Example.com", role=Role.MEMBER):
    with rig.uow.begin() as session:
        return invitations.invite(session, context, email=email, role=role, client=CLIENT)


def _accept(rig, invitations, token, user_id, email):
    with rig.uow.begin() as session:
        return invitations.accept(session, token=token, user_id=user_id, email=email, client=CLIENT)


def test_an_invitation_is_mailed_and_accepted_once(rig, access, invitations, tenant, tmp_path):
    invitation = _invite(rig, invitations, tenant)
    assert invitation.email == "New.Person@example.com"
    token = last_token(tmp_path / "invites", to="new.person@example.com", subject_contains="Acme")
    with rig.uow.begin() as session:
        (row,) = session.scalars(select(InvitationRow)).all()
        assert b"new.person" not in row.email_sealed.lower()
        assert token.encode() not in row.token_hash
    newcomer = _user(rig, "new.person@example.com")
    context = _accept(rig, invitations, token, newcomer, "NEW.PERSON@example.com")
    assert (context.tenant_id, context.role) == (tenant.tenant_id, Role.MEMBER)
    with pytest.raises(InvitationInvalid):
        _accept(rig, invitations, token, newcomer, "new.person@example.com")


def test_a_token_for_another_address_adds_nobody(rig, access, invitations, tenant, tmp_path):
    _invite(rig, invitations, tenant)
    token = last_token(tmp_path / "invites", to="new.person@example.com", subject_contains="Acme")
    thief = _user(rig, "thief@example.com")
    with pytest.raises(InvitationInvalid):
        _accept(rig, invitations, token, thief, "thief@example.com")
    with rig.uow.begin() as session, pytest.raises(TenantNotFound):
        access.resolve(session, user_id=thief, tenant_ref="acme")
    rightful = _user(rig, "new.person@example.com")
    assert _accept(rig, invitations, token, rightful, "new.person@example.com").role is Role.MEMBER


def test_an_expired_or_unknown_invitation_is_refused(rig, invitations, tenant, tmp_path):
    _invite(rig, invitations, tenant, role=Role.VIEWER)
    token = last_token(tmp_path / "invites", to="new.person@example.com", subject_contains="Acme")
    newcomer = _user(rig, "new.person@example.com")
    rig.advance(days=7, seconds=1)
    with pytest.raises(InvitationInvalid):
        _accept(rig, invitations, token, newcomer, "new.person@example.com")
    with pytest.raises(InvitationInvalid):
        _accept(rig, invitations, "x" * 43, newcomer, "new.person@example.com")


def test_only_owners_invite_owners_and_members_cannot_join_twice(
    rig, access, invitations, tenant, tmp_path
):
    admin = _user(rig, "admin@example.com")
    with rig.uow.begin() as session:
        access.add_member(session, tenant, user_id=admin, role=Role.ADMIN, client=CLIENT)
    with rig.uow.begin() as session:
        as_admin = access.resolve(session, user_id=admin, tenant_ref="acme")
    with pytest.raises(PermissionDenied):
        _invite(rig, invitations, as_admin, role=Role.OWNER)
    _invite(rig, invitations, as_admin, email="admin@example.com", role=Role.VIEWER)
    token = last_token(tmp_path / "invites", to="admin@example.com", subject_contains="Acme")
    with pytest.raises(AlreadyMember):
        _accept(rig, invitations, token, admin, "admin@example.com")


def test_invitations_are_audited_without_the_address(rig, invitations, tenant, tmp_path, audit_log):
    invitation = _invite(rig, invitations, tenant, role=Role.AUDITOR)
    token = last_token(tmp_path / "invites", to="new.person@example.com", subject_contains="Acme")
    newcomer = _user(rig, "new.person@example.com")
    _accept(rig, invitations, token, newcomer, "new.person@example.com")
    with rig.uow.begin() as session:
        page = AuditQuery(audit_log=audit_log).search(session, tenant.tenant_id)
    invites = [i for i in page.items if i.action.startswith("access.invitation_")]
    assert [i.action for i in invites] == [
        "access.invitation_accepted",
        "access.invitation_created",
    ]
    assert all(i.target == invitation.id and i.details == {"role": "auditor"} for i in invites)
    assert invites[0].actor == audit_log.pseudonym_for(newcomer)
    assert "new.person" not in repr(page.items).lower()
    assert invitation.expires_at - rig.clock.now() == timedelta(days=7)


def test_one_token_accepted_twice_at_once_adds_one_membership(rig, invitations, tenant, tmp_path):
    _invite(rig, invitations, tenant)
    token = last_token(tmp_path / "invites", to="new.person@example.com", subject_contains="Acme")
    newcomer = _user(rig, "new.person@example.com")
    barrier = threading.Barrier(2)
    outcomes = []

    def accept():
        barrier.wait(timeout=10)
        try:
            _accept(rig, invitations, token, newcomer, "new.person@example.com")
            outcomes.append("joined")
        except (AlreadyMember, InvitationInvalid) as refused:
            outcomes.append(type(refused).__name__)

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count("joined") == 1
    assert len(outcomes) == 2


def test_pending_invitations_are_listed_and_a_revoked_one_is_dead(
    rig, access, invitations, tenant, tmp_path
):
    first = _invite(rig, invitations, tenant, email="one@example.com")
    second = _invite(rig, invitations, tenant, email="two@example.com", role=Role.VIEWER)
    with rig.uow.begin() as session:
        pending = invitations.pending(session, tenant, after=None, limit=50)
    assert {(i.id, i.email, i.role) for i in pending} == {
        (first.id, "one@example.com", Role.MEMBER),
        (second.id, "two@example.com", Role.VIEWER),
    }
    with rig.uow.begin() as session:
        invitations.revoke(session, tenant, invitation_id=first.id, client=CLIENT)
    with rig.uow.begin() as session, pytest.raises(InvitationNotFound):
        invitations.revoke(session, tenant, invitation_id=first.id, client=CLIENT)
    token = last_token(tmp_path / "invites", to="one@example.com", subject_contains="Acme")
    one = _user(rig, "one@example.com")
    with pytest.raises(InvitationInvalid):
        _accept(rig, invitations, token, one, "one@example.com")
    rig.advance(days=8)
    with rig.uow.begin() as session:
        assert invitations.pending(session, tenant, after=None, limit=50) == []


def test_another_tenants_invitation_cannot_be_revoked(rig, access, invitations, tenant):
    invitation = _invite(rig, invitations, tenant)
    other_owner = _user(rig, "other@example.com")
    with rig.uow.begin() as session:
        access.create_tenant(session, user_id=other_owner, name="O", slug="other", client=CLIENT)
    with rig.uow.begin() as session:
        other = access.resolve(session, user_id=other_owner, tenant_ref="other")
    with rig.uow.begin() as session, pytest.raises(InvitationNotFound):
        invitations.revoke(session, other, invitation_id=invitation.id, client=CLIENT)
    with rig.uow.begin() as session:
        assert invitations.pending(session, other, after=None, limit=50) == []
        assert len(invitations.pending(session, tenant, after=None, limit=50)) == 1
