"""Custom roles on SQLite and PostgreSQL: built from the permission set, read on every request,
never a path to ownership; unknown roles and permissions are 422, refusals audited."""

import pytest

from bastion.access import (
    LastOwner,
    MemberNotFound,
    Permission,
    PermissionDenied,
    Role,
    TenantNotFound,
)
from bastion.access.errors import (
    InvalidRoleName,
    RoleInUse,
    RoleNameTaken,
    RoleNotFound,
    RoleNotGrantable,
    UnknownPermission,
    UnknownRole,
)
from tests.support.governance import make_stack
from tests.support.identity import CLIENT


@pytest.fixture
def stack(rig, audit_log):
    return make_stack(rig, audit_log)


@pytest.fixture
def world(stack):
    ann, bob, cat = stack.user("ann"), stack.user("bob"), stack.user("cat")
    # One transaction per tenant: the keyring provisions each data key in its own.
    with stack.rig.uow.begin() as session:
        acme = stack.access.create_tenant(
            session, user_id=ann, name="A", slug="acme", client=CLIENT
        )
    with stack.rig.uow.begin() as session:
        other = stack.access.create_tenant(
            session, user_id=cat, name="O", slug="other", client=CLIENT
        )
    with stack.rig.uow.begin() as session:
        owner = stack.access.resolve(session, user_id=ann, tenant_ref=acme.id)
        stack.access.add_member(session, owner, user_id=bob, role=Role.MEMBER, client=CLIENT)
    return {"acme": acme.id, "other": other.id, "ann": ann, "bob": bob, "cat": cat}


def _ctx(stack, user, tenant):
    with stack.rig.uow.begin() as session:
        return stack.access.resolve(session, user_id=user, tenant_ref=tenant)


def _create(stack, context, name, permissions):
    with stack.edge() as session:
        return stack.governance.roles.create(
            session, context, name=name, description=None, permissions=permissions, client=CLIENT
        )


def _assign(stack, context, user, role):
    with stack.edge() as session:
        return stack.governance.roles.assign(
            session, context, user_id=user, role=role, client=CLIENT
        )


def _roles(stack, context):
    with stack.rig.uow.begin() as session:
        return stack.governance.roles.all(session, context)


def test_a_member_with_a_custom_role_has_exactly_its_permissions_read_each_request(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    role = _create(stack, owner, "analyst", ["records:record:read", "audit:event:read"])
    assert role.permissions == {Permission.RECORD_READ, Permission.AUDIT_EVENT_READ}
    member = _assign(stack, owner, world["bob"], "analyst")
    assert member.custom_role == "analyst"
    bob = _ctx(stack, world["bob"], world["acme"])
    assert bob.custom_role == "analyst"
    assert bob.permissions == {Permission.RECORD_READ, Permission.AUDIT_EVENT_READ}
    with stack.edge() as session, pytest.raises(PermissionDenied):
        stack.access.authorize(session, bob, Permission.RECORD_WRITE, client=CLIENT)
    denied = stack.actions(world["acme"], "access.permission_denied")
    assert denied[-1].details["custom_role"] == "analyst"
    # An edit applies to the very next resolution (nothing is cached).
    with stack.edge() as session:
        stack.governance.roles.update(
            session,
            owner,
            "analyst",
            name=None,
            description="read only",
            permissions=["records:record:read"],
            client=CLIENT,
        )
    assert _ctx(stack, world["bob"], world["acme"]).permissions == {Permission.RECORD_READ}
    with stack.rig.uow.begin() as session:
        listed = stack.access.list_members(session, owner, after=None, limit=10)
    assert {(m.user_id, m.custom_role) for m in listed} == {
        (world["ann"], None),
        (world["bob"], "analyst"),
    }
    # A built-in role replaces the custom one.
    _assign(stack, owner, world["bob"], "viewer")
    bob = _ctx(stack, world["bob"], world["acme"])
    assert (bob.role, bob.custom_role) == (Role.VIEWER, None)
    actions = [e.action for e in stack.actions(world["acme"], "access.role_")]
    assert actions == ["access.role_created", "access.role_assigned", "access.role_updated"]


def test_bad_roles_are_refused_with_nothing_created_and_every_refusal_audited(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    refusals = [
        ("analyst", ["records:record:fly"], UnknownPermission),
        ("analyst", ["access:owner:manage"], RoleNotGrantable),
        ("analyst", ["access:role:manage"], RoleNotGrantable),
        ("analyst", ["access:tenant:update", "records:record:read"], RoleNotGrantable),
        ("admin", ["records:record:read"], InvalidRoleName),  # a built-in role's name
        ("Analyst!", ["records:record:read"], InvalidRoleName),
        ("ab", ["records:record:read"], InvalidRoleName),
    ]
    for name, permissions, error in refusals:
        with pytest.raises(error):
            _create(stack, owner, name, permissions)
    assert _roles(stack, owner) == []
    assert len(stack.actions(world["acme"], "access.role_refused")) == len(refusals)
    _create(stack, owner, "analyst", [])
    with pytest.raises(RoleNameTaken):
        _create(stack, owner, "analyst", ["records:record:read"])
    [role] = _roles(stack, owner)
    assert role.permissions == frozenset()
    with stack.edge() as session, pytest.raises(RoleNotGrantable):
        stack.governance.roles.update(
            session,
            owner,
            "analyst",
            name=None,
            description=None,
            permissions=["access:owner:manage"],
            client=CLIENT,
        )
    assert _roles(stack, owner)[0].permissions == frozenset()


def test_assigning_unknown_roles_other_tenants_roles_or_custom_roles_to_owners_is_refused(
    stack, world
):
    owner = _ctx(stack, world["ann"], world["acme"])
    foreign_owner = _ctx(stack, world["cat"], world["other"])
    foreign = _create(stack, foreign_owner, "foreign", ["records:record:read"])
    _create(stack, owner, "analyst", ["records:record:read"])
    for name in ("no-such-role", "foreign", foreign.id):
        with pytest.raises(UnknownRole):
            _assign(stack, owner, world["bob"], name)
    for ref in ("foreign", foreign.id):
        with stack.edge() as session, pytest.raises(RoleNotFound):
            stack.governance.roles.get(session, owner, ref, client=CLIENT)
    with stack.edge() as session, pytest.raises(MemberNotFound):
        # Another tenant's member: the same 404 as nobody.
        stack.governance.roles.assign(
            session, owner, user_id=world["cat"], role="analyst", client=CLIENT
        )
    with pytest.raises(RoleNotGrantable):
        _assign(stack, owner, world["ann"], "analyst")  # owners hold no custom role
    with pytest.raises(LastOwner):
        _assign(stack, owner, world["ann"], "viewer")
    assert _ctx(stack, world["bob"], world["acme"]).custom_role is None
    assert _ctx(stack, world["ann"], world["acme"]).role is Role.OWNER
    assert len(stack.actions(world["acme"], "access.role_refused")) == 7


def test_a_role_in_use_cannot_be_deleted(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    _create(stack, owner, "analyst", ["records:record:read"])
    _assign(stack, owner, world["bob"], "analyst")
    with stack.edge() as session, pytest.raises(RoleInUse):
        stack.governance.roles.delete(session, owner, "analyst", client=CLIENT)
    assert [r.name for r in _roles(stack, owner)] == ["analyst"]
    _assign(stack, owner, world["bob"], "member")
    with stack.edge() as session:
        stack.governance.roles.delete(session, owner, "analyst", client=CLIENT)
    assert _roles(stack, owner) == []


def test_a_custom_role_with_member_management_cannot_grant_more_than_it_holds(stack, world):
    owner = _ctx(stack, world["ann"], world["acme"])
    _create(
        stack,
        owner,
        "helpdesk",
        ["access:member:read", "access:member:update", "access:member:add"],
    )
    _assign(stack, owner, world["bob"], "helpdesk")
    bob = _ctx(stack, world["bob"], world["acme"])
    for role in (Role.ADMIN, Role.MEMBER, Role.OWNER):
        with stack.edge() as session, pytest.raises(PermissionDenied):
            stack.access.change_role(session, bob, user_id=world["bob"], role=role, client=CLIENT)
    with stack.edge() as session, pytest.raises(PermissionDenied):
        stack.access.add_member(session, bob, user_id=world["cat"], role=Role.ADMIN, client=CLIENT)
    assert _ctx(stack, world["bob"], world["acme"]).custom_role == "helpdesk"
    with pytest.raises(TenantNotFound):
        _ctx(stack, world["cat"], world["acme"])
