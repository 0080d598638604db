"""Red team: an API key may not open the tenant to operators.

Approving break-glass is never given to a key ("a person's decision, taken in a signed-in
session"). Turning the approval requirement off does the same thing for every later request, so
a key holding access:tenant:update must not do that either: 403, audited, nothing changed.
"""

import dataclasses

import pytest

from bastion.access import Permission, PermissionDenied
from bastion.access.policy import PolicyChange
from tests.support.governance import make_stack
from tests.support.identity import CLIENT


def test_a_settings_key_cannot_lift_break_glass_approval(rig, audit_log):
    stack = make_stack(rig, audit_log)
    owner = stack.user("ann")
    with stack.rig.uow.begin() as session:
        tenant = stack.access.create_tenant(
            session, user_id=owner, name="Acme", slug="acme", client=CLIENT
        )
        context = stack.access.resolve(session, user_id=owner, tenant_ref=tenant.id)
    # What requires() hands a route for an owner's key with these permissions.
    key = dataclasses.replace(
        context,
        api_key_id="key-1",
        api_key_permissions=frozenset({Permission.TENANT_SETTINGS_UPDATE, Permission.TENANT_READ}),
    )
    with pytest.raises(PermissionDenied), stack.edge() as session:
        stack.governance.policies.update(
            session, key, PolicyChange(break_glass_requires_approval=False), client=CLIENT
        )
    with stack.rig.uow.begin() as session:
        assert stack.governance.policies.get(session, context).break_glass_requires_approval
    # Other settings, and turning approval back on, stay within the key's permission.
    with stack.edge() as session:
        stack.governance.policies.update(
            session, key, PolicyChange(require_mfa=False), client=CLIENT
        )
    with stack.edge() as session:
        stack.governance.policies.update(
            session, context, PolicyChange(break_glass_requires_approval=False), client=CLIENT
        )
    with stack.edge() as session:
        updated = stack.governance.policies.update(
            session, key, PolicyChange(break_glass_requires_approval=True), client=CLIENT
        )
    assert updated.break_glass_requires_approval
