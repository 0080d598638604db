"""Tenant settings on SQLite and PostgreSQL: the IP allow-list is checked first, then the
second-factor requirement; bad or self-locking changes are refused, audited, and change nothing."""

import dataclasses

import pytest

from bastion.access import Permission, PermissionDenied, Role
from bastion.access.errors import InvalidPolicy, IpNotAllowed, PolicyLockout, TenantMfaRequired
from bastion.access.policy import PolicyChange, TenantPolicy
from bastion.alerts import Severity
from bastion.alerts.query import SecurityEventFilter, search_tenant
from tests.support.governance import make_stack
from tests.support.identity import CLIENT

INSIDE = dataclasses.replace(CLIENT, ip="198.51.100.9")
OUTSIDE = dataclasses.replace(CLIENT, ip="192.0.2.1")


@pytest.fixture
def stack(rig, audit_log):
    return make_stack(rig, audit_log)


@pytest.fixture
def tenant(stack):
    owner = stack.user("ann")
    member = stack.user("bob")
    with stack.rig.uow.begin() as session:
        tenant = stack.access.create_tenant(
            session, user_id=owner, name="Acme", slug="acme", client=CLIENT
        )
        context = stack.access.resolve(session, user_id=owner, tenant_ref=tenant.id)
        stack.access.add_member(session, context, user_id=member, role=Role.MEMBER, client=CLIENT)
    return {"id": tenant.id, "owner": owner, "member": member}


def _context(stack, user, tenant_id):
    with stack.rig.uow.begin() as session:
        return stack.access.resolve(session, user_id=user, tenant_ref=tenant_id)


def _change(stack, context, client=CLIENT, **change):
    with stack.edge() as session:
        return stack.governance.policies.update(
            session, context, PolicyChange(**change), client=client
        )


def _policy(stack, context):
    with stack.rig.uow.begin() as session:
        return stack.governance.policies.get(session, context)


def _authorize(stack, user, tenant_id, permission=Permission.TENANT_READ, client=CLIENT):
    with stack.edge() as session:
        context = stack.access.resolve(session, user_id=user, tenant_ref=tenant_id)
        stack.access.authorize(session, context, permission, client=client)


BAD_ALLOW_LISTS = (
    ["10.0.0.1/8"],  # host bits set: refused, never silently widened
    ["not-a-network"],
    ["10.0.0.0/33"],
    ["2001:db8::/129"],
    [f"10.{i // 256}.{i % 256}.0/24" for i in range(101)],
)


def test_a_bad_allow_list_is_refused_audited_and_changes_nothing(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    assert _policy(stack, owner) == TenantPolicy()  # the defaults
    for entries in BAD_ALLOW_LISTS:
        with pytest.raises(InvalidPolicy):
            _change(stack, owner, ip_allowlist=tuple(entries), confirm_lockout=True)
    assert _policy(stack, owner) == TenantPolicy()
    refused = stack.actions(tenant["id"], "access.settings_refused")
    assert len(refused) == len(BAD_ALLOW_LISTS)
    assert {event.outcome for event in refused} == {"denied"}
    assert stack.actions(tenant["id"], "access.settings_changed") == []


def test_an_allow_list_without_the_callers_address_needs_confirmation(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    with pytest.raises(PolicyLockout):
        _change(stack, owner, ip_allowlist=("198.51.100.0/24",))
    assert _policy(stack, owner).ip_allowlist == ()
    assert len(stack.actions(tenant["id"], "access.settings_refused")) == 1
    # From inside the new list there is nothing to confirm.
    changed = _change(
        stack, owner, client=INSIDE, ip_allowlist=("198.51.100.0/24", "2001:db8::/32")
    )
    assert changed.ip_allowlist == ("198.51.100.0/24", "2001:db8::/32")
    [event] = stack.actions(tenant["id"], "access.settings_changed")
    assert event.details["to"]["ip_allowlist"] == ["198.51.100.0/24", "2001:db8::/32"]


def test_the_allow_list_refuses_members_outside_it_before_any_permission_check(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    _change(stack, owner, ip_allowlist=("198.51.100.0/24",), confirm_lockout=True)
    for user in (tenant["owner"], tenant["member"]):
        # Even for a permission the role lacks, the network refusal comes first.
        for permission in (Permission.TENANT_READ, Permission.OWNER_MANAGE):
            with pytest.raises(IpNotAllowed):
                _authorize(stack, user, tenant["id"], permission, client=OUTSIDE)
    with pytest.raises(IpNotAllowed):
        _authorize(
            stack, tenant["member"], tenant["id"], client=dataclasses.replace(CLIENT, ip=None)
        )
    assert len(stack.actions(tenant["id"], "access.ip_refused")) == 5
    assert stack.actions(tenant["id"], "access.permission_denied") == []
    _authorize(stack, tenant["member"], tenant["id"], client=INSIDE)
    # A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6 addresses.
    _authorize(
        stack,
        tenant["member"],
        tenant["id"],
        client=dataclasses.replace(CLIENT, ip="::ffff:198.51.100.20"),
    )
    with pytest.raises(PermissionDenied):
        _authorize(stack, tenant["member"], tenant["id"], Permission.OWNER_MANAGE, client=INSIDE)
    # An empty list lifts the restriction.
    _change(stack, owner, client=INSIDE, ip_allowlist=())
    _authorize(stack, tenant["member"], tenant["id"], client=OUTSIDE)


def _ip_refusal_events(stack, tenant_id):
    with stack.rig.uow.begin() as session:
        page = search_tenant(session, tenant_id, SecurityEventFilter(type="access.ip_refused"))
    return [item.event for item in reversed(page.items)]


def test_allow_list_refusals_alert_the_tenant_once_an_hour_per_member_and_address(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    _change(stack, owner, ip_allowlist=("198.51.100.0/24",), confirm_lockout=True)
    elsewhere = dataclasses.replace(CLIENT, ip="203.0.113.50")
    for client in (OUTSIDE, OUTSIDE, OUTSIDE, elsewhere):
        with pytest.raises(IpNotAllowed):
            _authorize(stack, tenant["member"], tenant["id"], client=client)
    with pytest.raises(IpNotAllowed):
        _authorize(stack, tenant["owner"], tenant["id"], client=OUTSIDE)
    _authorize(stack, tenant["member"], tenant["id"], client=INSIDE)  # admitted: no event

    events = _ip_refusal_events(stack, tenant["id"])
    # Every refusal is audited; the alerts are one per (member, address) in the hour.
    assert len(stack.actions(tenant["id"], "access.ip_refused")) == 5
    # (The frozen clock gives them one time, so the page order among them is arbitrary.)
    assert sorted((e.subject, e.source) for e in events) == sorted(
        [
            (tenant["member"], OUTSIDE.ip),
            (tenant["member"], elsewhere.ip),
            (tenant["owner"], OUTSIDE.ip),
        ]
    )
    assert {e.severity for e in events} == {Severity.MEDIUM}
    assert {(e.subject, e.details["credential"], e.details["user"]) for e in events} == {
        (tenant["member"], "session", tenant["member"]),
        (tenant["owner"], "session", tenant["owner"]),
    }
    # An API key of the member's, from the same address: the key is its own subject.
    key = dataclasses.replace(
        _context(stack, tenant["member"], tenant["id"]),
        api_key_id="key-1",
        api_key_permissions=frozenset({Permission.TENANT_READ}),
    )
    with pytest.raises(IpNotAllowed), stack.edge() as session:
        stack.access.authorize(session, key, Permission.TENANT_READ, client=OUTSIDE)
    by_key = [e for e in _ip_refusal_events(stack, tenant["id"]) if e.subject == "key-1"]
    assert [(e.source, dict(e.details)) for e in by_key] == [
        (OUTSIDE.ip, {"credential": "api_key", "user": tenant["member"]})
    ]
    # The refusals go on an hour later: the owners hear of it again.
    stack.rig.advance(minutes=61)
    with pytest.raises(IpNotAllowed):
        _authorize(stack, tenant["member"], tenant["id"], client=OUTSIDE)
    assert len(_ip_refusal_events(stack, tenant["id"])) == 5


def test_required_mfa_refuses_members_without_a_second_factor_until_they_enrol(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    with pytest.raises(PolicyLockout):  # the owner has no second factor yet
        _change(stack, owner, require_mfa=True)
    assert _policy(stack, owner).require_mfa is False
    stack.enrol_second_factor(tenant["owner"])
    assert _change(stack, owner, require_mfa=True).require_mfa is True
    _authorize(stack, tenant["owner"], tenant["id"])
    with pytest.raises(TenantMfaRequired):
        _authorize(stack, tenant["member"], tenant["id"])
    [refusal] = stack.actions(tenant["id"], "access.mfa_required_refused")
    assert refusal.outcome == "denied"
    stack.enrol_second_factor(tenant["member"])
    _authorize(stack, tenant["member"], tenant["id"])


def test_the_allow_list_is_checked_before_the_second_factor(stack, tenant):
    owner = _context(stack, tenant["owner"], tenant["id"])
    stack.enrol_second_factor(tenant["owner"])
    _change(stack, owner, client=INSIDE, require_mfa=True, ip_allowlist=("198.51.100.0/24",))
    with pytest.raises(IpNotAllowed):
        _authorize(stack, tenant["member"], tenant["id"], client=OUTSIDE)
    with pytest.raises(TenantMfaRequired):
        _authorize(stack, tenant["member"], tenant["id"], client=INSIDE)


def test_only_the_settings_permission_changes_settings_and_approval_can_be_switched_off(
    stack, tenant
):
    with pytest.raises(PermissionDenied):
        _authorize(stack, tenant["member"], tenant["id"], Permission.TENANT_SETTINGS_UPDATE)
    owner = _context(stack, tenant["owner"], tenant["id"])
    policy = _change(stack, owner, break_glass_requires_approval=False)
    assert policy.break_glass_requires_approval is False
    assert _policy(stack, owner).break_glass_requires_approval is False
