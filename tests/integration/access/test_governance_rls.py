"""Custom roles and break-glass on PostgreSQL as the application role, where row-level security
shows a transaction only what its bound user and tenant may see (migration 0014)."""

import pytest

from bastion.access import Permission, Role, TenantNotFound
from bastion.access.break_glass import GrantStatus
from bastion.audit import AuditLog
from bastion.db import UnitOfWork, bind_tenant, bind_user, make_engine, upgrade_to_head
from bastion.settings import AuditSettings
from tests.support.governance import make_stack
from tests.support.identity import CLIENT, make_rig
from tests.support.rls import app_role

pytestmark = pytest.mark.postgres

REASON = "Ticket 99: the customer cannot see yesterday's records"


@pytest.fixture
def world(postgres_databases, postgres_url, tmp_path):
    url, schema = postgres_databases.create_schema(postgres_url)
    owner = make_engine(url, create=True)
    upgrade_to_head(owner)
    rig = make_rig(owner, tmp_path / "mail")
    stack = make_stack(
        rig, AuditLog(pseudonymizer=rig.keyring, clock=rig.clock, settings=AuditSettings())
    )
    role = app_role(url)
    app = make_engine(role.url)
    yield stack, UnitOfWork(app)
    app.dispose()
    role.drop()
    owner.dispose()
    postgres_databases.drop_schema(postgres_url, schema)


def test_custom_roles_and_break_glass_work_as_the_application_role(world):
    stack, app = world
    ann, bob = stack.user("ann"), stack.user("bob")
    ops = stack.user("ops", operator=True)
    with stack.rig.uow.begin() as session:
        tenant = stack.access.create_tenant(
            session, user_id=ann, name="A", slug="acme", client=CLIENT
        )
    with stack.edge() as session:
        owner = stack.access.resolve(session, user_id=ann, tenant_ref="acme")
        stack.access.add_member(session, owner, user_id=bob, role=Role.MEMBER, client=CLIENT)
        stack.governance.roles.create(
            session,
            owner,
            name="analyst",
            description=None,
            permissions=["records:record:read"],
            client=CLIENT,
        )
        stack.governance.roles.assign(session, owner, user_id=bob, role="analyst", client=CLIENT)

    # A custom role is read after the membership binds its tenant.
    with app.begin() as session:
        bind_user(session, bob)
        context = stack.access.resolve(session, user_id=bob, tenant_ref="acme")
        bind_tenant(session, context.tenant_id)
        stack.access.authorize(session, context, Permission.RECORD_READ, client=CLIENT)
    assert context.permissions == {Permission.RECORD_READ}

    # An operator asks by tenant id, an owner approves, and the operator reads under the grant.
    with app.begin() as session:
        bind_user(session, ops)
        grant = stack.governance.break_glass.request(
            session,
            operator_id=ops,
            tenant_ref=tenant.id,
            reason=REASON,
            duration_minutes=30,
            client=CLIENT,
        )
    with app.begin() as session:
        bind_user(session, ann)
        owner = stack.access.resolve(session, user_id=ann, tenant_ref="acme")
        bind_tenant(session, owner.tenant_id)
        approved = stack.governance.break_glass.approve(session, owner, grant.id, client=CLIENT)
    assert approved.status is GrantStatus.ACTIVE
    for ref in ("acme", tenant.id):
        with app.begin() as session:
            bind_user(session, ops)
            context = stack.access.resolve(session, user_id=ops, tenant_ref=ref, operator=True)
            bind_tenant(session, context.tenant_id)
            stack.access.authorize(
                session, context, Permission.RECORD_READ, client=CLIENT, route="/x"
            )
        assert context.break_glass_grant_id == grant.id
    assert len(stack.actions(tenant.id, "break_glass.read")) == 2
    with app.begin() as session:
        bind_user(session, ops)
        stack.governance.break_glass.revoke_own(
            session, operator_id=ops, grant_id=grant.id, client=CLIENT
        )
    with app.begin() as session:
        bind_user(session, ops)
        with pytest.raises(TenantNotFound):
            stack.access.resolve(session, user_id=ops, tenant_ref="acme", operator=True)
