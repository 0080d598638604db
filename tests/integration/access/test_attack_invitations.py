"""Red team: an admin who is removed must not walk back in through an invitation they sent.

Before being removed, a disgruntled admin invites an address they control as an admin. Removing
the member (P10: access removed at once) must withdraw their pending invitations, as it revokes
their API keys; otherwise the invitation, accepted later, restores the access just taken away.
"""

import pytest

from bastion.access import InvitationInvalid, Role, TenantNotFound
from tests.support.identity import CLIENT, last_token

PASSWORD = "correct horse battery staple"


def _user(rig, email):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=email, password=PASSWORD, name=None, client=CLIENT
        ).id


def test_removing_a_member_withdraws_the_invitations_they_sent(rig, access, invitations, tmp_path):
    owner, admin = _user(rig, "owner@example.com"), _user(rig, "admin@example.com")
    with rig.uow.begin() as session:
        access.create_tenant(session, user_id=owner, name="Acme", slug="acme", client=CLIENT)
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        access.add_member(session, ctx, user_id=admin, role=Role.ADMIN, client=CLIENT)
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=admin, tenant_ref="acme")
        invitations.invite(session, ctx, email="alt@example.com", role=Role.ADMIN, client=CLIENT)
        # The owner's own invitation is not the removed admin's: it stays.
        owners = access.resolve(session, user_id=owner, tenant_ref="acme")
        invitations.invite(
            session, owners, email="kept@example.com", role=Role.VIEWER, client=CLIENT
        )
    token = last_token(tmp_path / "in", to="alt@example.com", subject_contains="Acme")
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        access.remove_member(session, ctx, user_id=admin, client=CLIENT)

    alt = _user(rig, "alt@example.com")
    with pytest.raises(InvitationInvalid), rig.uow.begin() as session:
        invitations.accept(
            session, token=token, user_id=alt, email="alt@example.com", client=CLIENT
        )
    with rig.uow.begin() as session, pytest.raises(TenantNotFound):
        access.resolve(session, user_id=alt, tenant_ref="acme")
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        left = invitations.pending(session, ctx, after=None, limit=10)
    assert [i.email for i in left] == ["kept@example.com"]


def test_an_invitation_grants_no_more_than_its_sender_holds_when_accepted(
    rig, access, invitations, tmp_path
):
    owner, admin = _user(rig, "owner@example.com"), _user(rig, "admin@example.com")
    with rig.uow.begin() as session:
        access.create_tenant(session, user_id=owner, name="Acme", slug="acme", client=CLIENT)
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        access.add_member(session, ctx, user_id=admin, role=Role.ADMIN, client=CLIENT)
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=admin, tenant_ref="acme")
        invitations.invite(session, ctx, email="alt@example.com", role=Role.ADMIN, client=CLIENT)
        invitations.invite(session, ctx, email="ok@example.com", role=Role.ADMIN, client=CLIENT)
    alt_token = last_token(tmp_path / "in", to="alt@example.com", subject_contains="Acme")
    ok_token = last_token(tmp_path / "in", to="ok@example.com", subject_contains="Acme")
    # The admin is demoted: what they could hand out as an admin is no longer theirs to give.
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        access.change_role(session, ctx, user_id=admin, role=Role.VIEWER, client=CLIENT)
    alt = _user(rig, "alt@example.com")
    with pytest.raises(InvitationInvalid), rig.uow.begin() as session:
        invitations.accept(
            session, token=alt_token, user_id=alt, email="alt@example.com", client=CLIENT
        )
    # Promoted again, the admin's invitation works as it was meant to.
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=owner, tenant_ref="acme")
        access.change_role(session, ctx, user_id=admin, role=Role.ADMIN, client=CLIENT)
    ok = _user(rig, "ok@example.com")
    with rig.uow.begin() as session:
        joined = invitations.accept(
            session, token=ok_token, user_id=ok, email="ok@example.com", client=CLIENT
        )
    assert joined.role is Role.ADMIN
