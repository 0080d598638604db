"""Red team: an operator under a break-glass grant cannot probe the tenant without a trace.

Every request under a grant appends ``break_glass.read`` in the request transaction. When the
route then failed (a 404 for a record id or collection name that is not there) the transaction
rolled back and the entry with it: an operator could map what exists, request by request, and
the tenant's log would show nothing. A grant is read-only, so keeping that transaction keeps
only the audit entry.
"""

import asyncio
from types import SimpleNamespace

import pytest

from bastion.access import Permission
from bastion.access.types import AccessAction
from bastion.api.deps import get_session
from bastion.errors import NotFound
from tests.support.governance import make_stack
from tests.support.identity import CLIENT

REASON = "Ticket 4711: customer reports records missing after import"


class _NoSuchRecord(NotFound):
    code = "records.record_not_found"


def test_a_failed_request_under_a_grant_is_still_on_the_tenants_chain(rig, audit_log):
    stack = make_stack(rig, audit_log)
    ann, ops = stack.user("ann"), stack.user("ops", operator=True)
    with stack.rig.uow.begin() as session:
        acme = stack.access.create_tenant(
            session, user_id=ann, name="A", slug="acme", client=CLIENT
        )
    with stack.edge() as session:
        grant = stack.governance.break_glass.request(
            session,
            operator_id=ops,
            tenant_ref=acme.id,
            reason=REASON,
            duration_minutes=60,
            client=CLIENT,
        )
    with stack.edge() as session:
        owner = stack.access.resolve(session, user_id=ann, tenant_ref=acme.id)
        stack.governance.break_glass.approve(session, owner, grant.id, client=CLIENT)

    async def probe():
        dependency = get_session(SimpleNamespace(request_uow=stack.rig.uow))
        session = await anext(dependency)
        context = stack.access.resolve(session, user_id=ops, tenant_ref=acme.id, operator=True)
        route = f"/api/v1/tenants/{acme.id}/collections/payroll/records/guess"
        stack.access.authorize(session, context, Permission.RECORD_READ, client=CLIENT, route=route)
        with pytest.raises(_NoSuchRecord):
            await dependency.athrow(_NoSuchRecord())

    asyncio.run(probe())
    reads = stack.actions(acme.id, "break_glass.read")
    assert [r.details["route"] for r in reads] == [
        f"/api/v1/tenants/{acme.id}/collections/payroll/records/guess"
    ]


def test_a_failed_member_request_still_writes_nothing(rig, audit_log):
    stack = make_stack(rig, audit_log)
    ann = stack.user("ann")
    with stack.rig.uow.begin() as session:
        acme = stack.access.create_tenant(
            session, user_id=ann, name="A", slug="acme", client=CLIENT
        )
    before = len(stack.actions(acme.id))

    async def failing():
        dependency = get_session(SimpleNamespace(request_uow=stack.rig.uow))
        session = await anext(dependency)
        context = stack.access.resolve(session, user_id=ann, tenant_ref=acme.id)
        stack.access.record(
            session, context, AccessAction.SETTINGS_CHANGED, target=None, client=CLIENT
        )
        with pytest.raises(_NoSuchRecord):
            await dependency.athrow(_NoSuchRecord())

    asyncio.run(failing())
    assert len(stack.actions(acme.id)) == before
