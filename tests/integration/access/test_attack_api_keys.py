"""Red team: an API key must never hand out more than it holds itself.

A key acts with its own permissions AND its creator's role. Member management and role
management both *grant* permissions to someone else; if they only checked the key's right to
call the route, a key scoped to "change members' roles" could make anyone an admin, and a key
scoped to "manage roles" could build and assign a role with every records permission. Each
attempt must be a 403/422 that changes nothing.
"""

import pytest

from bastion.access import Permission, Role, SqlAccess, SqlApiKeys
from bastion.access.errors import PermissionDenied, RoleNotGrantable
from bastion.access.roles import SqlRoles
from bastion.errors import AppError
from tests.support.identity import CLIENT

PASSWORD = "correct horse battery staple"
MEMBERS = [
    Permission.MEMBER_READ.value,
    Permission.MEMBER_UPDATE.value,
    Permission.MEMBER_ADD.value,
]


@pytest.fixture
def keys(audit_log, rig):
    return SqlApiKeys(audit_log=audit_log, clock=rig.clock)


@pytest.fixture
def roles(access, audit_log, rig):
    return SqlRoles(access=access, audit_log=audit_log, clock=rig.clock)


def _user(rig, name):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=f"{name}@example.com", password=PASSWORD, name=None, client=CLIENT
        ).id


def _key_context(access: SqlAccess, keys: SqlApiKeys, session, secret, tenant):
    principal = keys.authenticate(session, token=secret, client=CLIENT)
    context = access.resolve(session, user_id=principal.user_id, tenant_ref=tenant.id)
    return keys.narrow(session, context, principal, client=CLIENT)


def _attempt(rig, action):
    """Run ``action(session)`` as the edge does: an audited refusal commits only its record."""
    with pytest.raises(AppError) as caught, rig.uow.begin() as session:
        action(session)
    return caught.value


def test_a_member_management_key_cannot_grant_a_role_beyond_its_own_permissions(rig, access, keys):
    owner, admin, mallory, newcomer = (_user(rig, n) for n in ("own", "adm", "mal", "new"))
    with rig.uow.begin() as session:
        acme = access.create_tenant(session, user_id=owner, name="A", slug="acme", client=CLIENT)
        ctx = access.resolve(session, user_id=owner, tenant_ref=acme.id)
        access.add_member(session, ctx, user_id=admin, role=Role.ADMIN, client=CLIENT)
        access.add_member(session, ctx, user_id=mallory, role=Role.VIEWER, client=CLIENT)
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=admin, tenant_ref=acme.id)
        issued = keys.create(
            session,
            ctx,
            name="hr-sync",
            permissions=MEMBERS,
            expires_at=None,
            expires_in_days=None,
            client=CLIENT,
        )

    def promote(session):
        context = _key_context(access, keys, session, issued.secret, acme)
        access.change_role(session, context, user_id=mallory, role=Role.ADMIN, client=CLIENT)

    def add_admin(session):
        context = _key_context(access, keys, session, issued.secret, acme)
        access.add_member(session, context, user_id=newcomer, role=Role.ADMIN, client=CLIENT)

    assert isinstance(_attempt(rig, promote), PermissionDenied)
    assert isinstance(_attempt(rig, add_admin), PermissionDenied)
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=mallory, tenant_ref=acme.id)
        assert ctx.role is Role.VIEWER
        members = {m.user_id for m in access.list_members(session, ctx, after=None, limit=50)}
    assert newcomer not in members


def test_a_role_management_key_cannot_build_or_assign_a_role_beyond_its_own_permissions(
    rig, access, keys, roles
):
    owner, viewer = _user(rig, "own"), _user(rig, "vie")
    with rig.uow.begin() as session:
        acme = access.create_tenant(session, user_id=owner, name="A", slug="acme", client=CLIENT)
        ctx = access.resolve(session, user_id=owner, tenant_ref=acme.id)
        access.add_member(session, ctx, user_id=viewer, role=Role.VIEWER, client=CLIENT)
        # The owner (in a session) made a powerful role earlier; that is theirs to do.
        roles.create(
            session,
            ctx,
            name="data-admin",
            description=None,
            permissions=[Permission.RECORD_DELETE.value, Permission.RECORD_READ.value],
            client=CLIENT,
        )
        issued = keys.create(
            session,
            ctx,
            name="roles-sync",
            permissions=[Permission.ROLE_MANAGE.value, Permission.MEMBER_READ.value],
            expires_at=None,
            expires_in_days=None,
            client=CLIENT,
        )

    def build(session):
        context = _key_context(access, keys, session, issued.secret, acme)
        roles.create(
            session,
            context,
            name="wide",
            description=None,
            permissions=[Permission.AUDIT_EVENT_EXPORT.value],
            client=CLIENT,
        )

    def widen(session):
        context = _key_context(access, keys, session, issued.secret, acme)
        roles.update(
            session,
            context,
            "data-admin",
            name=None,
            description=None,
            permissions=[Permission.RECORD_DELETE.value, Permission.AUDIT_EVENT_EXPORT.value],
            client=CLIENT,
        )

    def assign(session):
        context = _key_context(access, keys, session, issued.secret, acme)
        roles.assign(session, context, user_id=viewer, role="data-admin", client=CLIENT)

    for attack in (build, widen, assign):
        assert isinstance(_attempt(rig, attack), RoleNotGrantable)
    with rig.uow.begin() as session:
        ctx = access.resolve(session, user_id=owner, tenant_ref=acme.id)
        assert [r.name for r in roles.all(session, ctx)] == ["data-admin"]
        assert roles.get(session, ctx, "data-admin", client=CLIENT).permissions == {
            Permission.RECORD_DELETE,
            Permission.RECORD_READ,
        }
        assert access.resolve(session, user_id=viewer, tenant_ref=acme.id).custom_role is None
    # Within the key's own permissions, management still works.
    with rig.uow.begin() as session:
        context = _key_context(access, keys, session, issued.secret, acme)
        made = roles.create(
            session,
            context,
            name="readers",
            description=None,
            permissions=[Permission.MEMBER_READ.value],
            client=CLIENT,
        )
    assert made.permissions == {Permission.MEMBER_READ}
