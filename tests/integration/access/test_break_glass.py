"""Break-glass grants on SQLite and PostgreSQL: approval by someone else, read-only access with
every request on the tenant's chain, and expired, revoked or unapproved grants inert."""

import pytest

from bastion.access import Permission, PermissionDenied, Role, TenantNotFound
from bastion.access.break_glass import BREAK_GLASS_PERMISSIONS, GrantStatus
from bastion.access.errors import (
    GrantNotFound,
    GrantNotPending,
    InvalidBreakGlass,
    SelfApproval,
    UnknownTenant,
)
from bastion.access.models import BreakGlassGrantRow
from bastion.access.policy import PolicyChange
from tests.support.governance import make_stack
from tests.support.identity import CLIENT

REASON = "Ticket 4711: customer reports records missing after import"


@pytest.fixture
def stack(rig, audit_log):
    return make_stack(rig, audit_log)


@pytest.fixture
def world(stack):
    ann, ops = stack.user("ann"), stack.user("ops", operator=True)
    cat = stack.user("cat")
    with stack.rig.uow.begin() as session:
        acme = stack.access.create_tenant(
            session, user_id=ann, name="A", slug="acme", client=CLIENT
        )
    with stack.rig.uow.begin() as session:
        other = stack.access.create_tenant(
            session, user_id=cat, name="O", slug="other", client=CLIENT
        )
    return {"acme": acme.id, "other": other.id, "ann": ann, "ops": ops, "cat": cat}


def _ctx(stack, user, tenant, *, operator=False):
    with stack.rig.uow.begin() as session:
        return stack.access.resolve(session, user_id=user, tenant_ref=tenant, operator=operator)


def _request(stack, operator, tenant, *, minutes=60, reason=REASON):
    with stack.edge() as session:
        return stack.governance.break_glass.request(
            session,
            operator_id=operator,
            tenant_ref=tenant,
            reason=reason,
            duration_minutes=minutes,
            client=CLIENT,
        )


def _approve(stack, context, grant_id):
    with stack.edge() as session:
        return stack.governance.break_glass.approve(session, context, grant_id, client=CLIENT)


def _read(stack, operator, tenant, permission=Permission.RECORD_READ):
    with stack.edge() as session:
        context = stack.access.resolve(session, user_id=operator, tenant_ref=tenant, operator=True)
        stack.access.authorize(
            session, context, permission, client=CLIENT, route=f"/api/v1/tenants/{tenant}/x"
        )
        return context


def test_an_approved_grant_gives_read_only_access_and_every_read_is_audited(stack, world):
    with pytest.raises(TenantNotFound):  # operators hold no membership
        _ctx(stack, world["ops"], world["acme"], operator=True)
    grant = _request(stack, world["ops"], "acme", minutes=30)
    assert grant.status is GrantStatus.PENDING
    with pytest.raises(TenantNotFound):  # pending: inert
        _read(stack, world["ops"], "acme")
    owner = _ctx(stack, world["ann"], world["acme"])
    approved = _approve(stack, owner, grant.id)
    assert approved.status is GrantStatus.ACTIVE
    assert approved.approved_by == world["ann"]
    context = _read(stack, world["ops"], "acme")
    assert context.break_glass_grant_id == grant.id
    assert context.permissions == BREAK_GLASS_PERMISSIONS
    _read(stack, world["ops"], world["acme"], Permission.AUDIT_EVENT_READ)
    for write in (Permission.RECORD_WRITE, Permission.MEMBER_ADD, Permission.API_KEY_MANAGE):
        with pytest.raises(PermissionDenied):
            _read(stack, world["ops"], "acme", write)
    reads = stack.actions(world["acme"], "break_glass.read")
    assert len(reads) == 2
    assert reads[0].target == grant.id
    assert reads[0].details == {
        "permission": "records:record:read",
        "route": "/api/v1/tenants/acme/x",
    }
    assert reads[0].actor == stack.audit_log.pseudonym_for(world["ops"])
    trail = [e.action for e in stack.actions(world["acme"], "break_glass.")]
    assert trail == [
        "break_glass.requested",
        "break_glass.approved",
        "break_glass.read",
        "break_glass.read",
    ]
    # Another tenant stays out of reach.
    with pytest.raises(TenantNotFound):
        _read(stack, world["ops"], "other")
    # The grant is inert once its duration has passed.
    stack.rig.advance(minutes=31)
    with pytest.raises(TenantNotFound):
        _read(stack, world["ops"], "acme")
    with stack.rig.uow.begin() as session:
        [listed] = stack.governance.break_glass.for_tenant(session, owner)
    assert listed.status is GrantStatus.EXPIRED


def test_a_revoked_grant_is_inert_and_cannot_be_approved_again(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    grant = _request(stack, world["ops"], world["acme"])
    _approve(stack, owner, grant.id)
    _read(stack, world["ops"], "acme")
    with stack.edge() as session:
        revoked = stack.governance.break_glass.revoke(session, owner, grant.id, client=CLIENT)
    assert revoked.status is GrantStatus.REVOKED
    with pytest.raises(TenantNotFound):
        _read(stack, world["ops"], "acme")
    with pytest.raises(GrantNotPending):
        _approve(stack, owner, grant.id)
    # The operator can end their own grant early, too.
    second = _request(stack, world["ops"], "acme")
    _approve(stack, owner, second.id)
    with stack.edge() as session:
        stack.governance.break_glass.revoke_own(
            session, operator_id=world["ops"], grant_id=second.id, client=CLIENT
        )
    with pytest.raises(TenantNotFound):
        _read(stack, world["ops"], "acme")


def test_bad_requests_and_approvals_are_refused_audited_and_change_nothing(stack, world):
    for minutes, reason in ((481, REASON), (0, REASON), (-5, REASON), (60, "  too short ")):
        with pytest.raises(InvalidBreakGlass):
            _request(stack, world["ops"], "acme", minutes=minutes, reason=reason)
    with pytest.raises(UnknownTenant):
        _request(stack, world["ops"], "no-such-tenant")
    with stack.rig.uow.begin() as session:
        assert session.query(BreakGlassGrantRow).count() == 0
    assert len(stack.actions(world["acme"], "break_glass.refused")) == 4
    assert len(stack.actions(None, "break_glass.refused")) == 1  # the system chain
    grant = _request(stack, world["ops"], "acme")
    # Another tenant's owner cannot approve it (404: not theirs), nor can its own requester,
    # even if they are an owner of the tenant.
    foreign = _ctx(stack, world["cat"], world["other"])
    with pytest.raises(GrantNotFound):
        _approve(stack, foreign, grant.id)
    with stack.edge() as session:
        owner = stack.access.resolve(session, user_id=world["ann"], tenant_ref="acme")
        stack.access.add_member(
            session, owner, user_id=world["ops"], role=Role.OWNER, client=CLIENT
        )
    ops_as_owner = _ctx(stack, world["ops"], world["acme"])
    with pytest.raises(SelfApproval):
        _approve(stack, ops_as_owner, grant.id)
    with stack.rig.uow.begin() as session:
        row = session.get(BreakGlassGrantRow, grant.id)
        assert row.approved_at is None
    assert len(stack.actions(world["other"], "break_glass.refused")) == 1
    # A request nobody approved within a day lapses.
    stack.rig.advance(hours=25)
    with pytest.raises(GrantNotPending):
        _approve(stack, owner, grant.id)


def test_without_required_approval_a_grant_is_active_at_once(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    with stack.edge() as session:
        stack.governance.policies.update(
            session, owner, PolicyChange(break_glass_requires_approval=False), client=CLIENT
        )
    grant = _request(stack, world["ops"], "acme", minutes=480)
    assert grant.status is GrantStatus.ACTIVE
    _read(stack, world["ops"], "acme", Permission.MEMBER_READ)
    [requested] = stack.actions(world["acme"], "break_glass.requested")
    assert requested.details == {
        "reason": REASON,
        "duration_minutes": 480,
        "requires_approval": False,
    }
    stack.rig.advance(minutes=480)
    with pytest.raises(TenantNotFound):
        _read(stack, world["ops"], "acme")
