"""Tenants and memberships on SQLite and PostgreSQL: scoping, roles, last owner, audit."""

import threading

import pytest
from sqlalchemy import select

from bastion.access import (
    AlreadyMember,
    InvalidSlug,
    LastOwner,
    MemberNotFound,
    Permission,
    PermissionDenied,
    Role,
    SlugTaken,
    TenantNotFound,
)
from bastion.access.models import MembershipRow
from bastion.audit import AuditFilter, AuditQuery
from bastion.crypto.models import TenantKey
from tests.support.identity import CLIENT

PASSWORD = "correct horse battery staple"


def _user(rig, email):
    with rig.uow.begin() as session:
        return rig.identity.signup(
            session, email=email, password=PASSWORD, name=None, client=CLIENT
        ).id


@pytest.fixture
def users(rig):
    return {name: _user(rig, f"{name}@example.com") for name in ("ann", "bob", "cat", "dan")}


def _tenant(rig, access, owner, slug="acme"):
    with rig.uow.begin() as session:
        return access.create_tenant(session, user_id=owner, name="Acme", slug=slug, client=CLIENT)


def _context(rig, access, user, ref):
    with rig.uow.begin() as session:
        return access.resolve(session, user_id=user, tenant_ref=ref)


def _add(rig, access, tenant, actor, user, *, role):
    with rig.uow.begin() as session:
        context = access.resolve(session, user_id=actor, tenant_ref=tenant.id)
        return access.add_member(session, context, user_id=user, role=role, client=CLIENT)


def test_the_creator_owns_the_tenant_and_its_data_key_exists(rig, access, users, engine):
    tenant = _tenant(rig, access, users["ann"])
    assert tenant.slug == "acme"
    for ref in (tenant.id, "acme"):
        context = _context(rig, access, users["ann"], ref)
        assert context.tenant_id == tenant.id
        assert context.role is Role.OWNER
    with rig.uow.begin() as session:
        mine = access.my_tenants(session, user_id=users["ann"])
        assert [(m.tenant.slug, m.role) for m in mine] == [("acme", Role.OWNER)]
        assert session.scalars(select(TenantKey).where(TenantKey.tenant_id == tenant.id)).first()
    assert rig.keyring.key_versions(tenant.id)


def test_a_non_member_gets_not_found_by_id_and_by_slug_as_for_a_missing_tenant(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    for ref in (tenant.id, "acme", "no-such-tenant", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(TenantNotFound):
            _context(rig, access, users["bob"], ref)


@pytest.mark.parametrize(
    "slug",
    ["ab", "-acme", "acme-", "Acme", "a_b", "x" * 64, "12345678-1234-1234-1234-123456789abc"],
)
def test_bad_slugs_are_refused(rig, access, users, slug):
    with pytest.raises(InvalidSlug):
        _tenant(rig, access, users["ann"], slug=slug)


def test_a_taken_slug_is_a_conflict(rig, access, users):
    _tenant(rig, access, users["ann"])
    with pytest.raises(SlugTaken):
        _tenant(rig, access, users["bob"])


def test_roles_decide_and_a_refusal_is_audited_on_the_tenants_chain(rig, access, users, audit_log):
    tenant = _tenant(rig, access, users["ann"])
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.VIEWER)
    viewer = _context(rig, access, users["bob"], "acme")
    assert viewer.has_permission(Permission.MEMBER_READ)
    with rig.uow.begin() as session, pytest.raises(PermissionDenied):
        access.authorize(session, viewer, Permission.MEMBER_REMOVE, client=CLIENT)
    with rig.uow.begin() as session:
        page = AuditQuery(audit_log=audit_log).search(
            session, tenant.id, AuditFilter(action="access.permission_denied")
        )
    (denied,) = page.items
    assert denied.outcome == "denied"
    assert denied.details == {"permission": "access:member:remove", "role": "viewer"}


def test_the_last_owner_can_be_neither_removed_nor_downgraded(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    owner = _context(rig, access, users["ann"], "acme")
    with rig.uow.begin() as session, pytest.raises(LastOwner):
        access.change_role(session, owner, user_id=users["ann"], role=Role.ADMIN, client=CLIENT)
    with rig.uow.begin() as session, pytest.raises(LastOwner):
        access.remove_member(session, owner, user_id=users["ann"], client=CLIENT)
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.OWNER)
    with rig.uow.begin() as session:
        access.change_role(session, owner, user_id=users["ann"], role=Role.ADMIN, client=CLIENT)
    assert _context(rig, access, users["ann"], "acme").role is Role.ADMIN
    bob = _context(rig, access, users["bob"], "acme")
    with rig.uow.begin() as session, pytest.raises(LastOwner):
        access.remove_member(session, bob, user_id=users["bob"], client=CLIENT)


def test_an_admin_manages_members_but_never_owners(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.ADMIN)
    _add(rig, access, tenant, users["ann"], users["cat"], role=Role.MEMBER)
    admin = _context(rig, access, users["bob"], "acme")
    with rig.uow.begin() as session:
        changed = access.change_role(
            session, admin, user_id=users["cat"], role=Role.VIEWER, client=CLIENT
        )
        assert changed.role is Role.VIEWER
    for attempt in (
        lambda s: access.change_role(
            s, admin, user_id=users["cat"], role=Role.OWNER, client=CLIENT
        ),
        lambda s: access.change_role(
            s, admin, user_id=users["ann"], role=Role.VIEWER, client=CLIENT
        ),
        lambda s: access.remove_member(s, admin, user_id=users["ann"], client=CLIENT),
        lambda s: access.add_member(s, admin, user_id=users["dan"], role=Role.OWNER, client=CLIENT),
    ):
        with rig.uow.begin() as session, pytest.raises(PermissionDenied):
            attempt(session)
    assert _context(rig, access, users["ann"], "acme").role is Role.OWNER
    assert _context(rig, access, users["cat"], "acme").role is Role.VIEWER


def test_removal_and_downgrade_apply_to_the_next_resolution(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.ADMIN)
    owner = _context(rig, access, users["ann"], "acme")
    with rig.uow.begin() as session:
        access.change_role(session, owner, user_id=users["bob"], role=Role.VIEWER, client=CLIENT)
    assert _context(rig, access, users["bob"], "acme").role is Role.VIEWER
    with rig.uow.begin() as session:
        access.remove_member(session, owner, user_id=users["bob"], client=CLIENT)
    with pytest.raises(TenantNotFound):
        _context(rig, access, users["bob"], "acme")


def test_membership_errors(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    owner = _context(rig, access, users["ann"], "acme")
    with pytest.raises(AlreadyMember):
        _add(rig, access, tenant, users["ann"], users["ann"], role=Role.MEMBER)
    with pytest.raises(MemberNotFound):
        _add(
            rig,
            access,
            tenant,
            users["ann"],
            "00000000-0000-0000-0000-000000000000",
            role=Role.MEMBER,
        )
    with rig.uow.begin() as session, pytest.raises(MemberNotFound):
        access.remove_member(session, owner, user_id=users["bob"], client=CLIENT)


def test_member_lists_are_scoped_to_the_tenant_and_paged(rig, access, users):
    first = _tenant(rig, access, users["ann"])
    _tenant(rig, access, users["dan"], slug="other")
    for name in ("bob", "cat"):
        _add(rig, access, first, users["ann"], users[name], role=Role.MEMBER)
    owner = _context(rig, access, users["ann"], "acme")
    with rig.uow.begin() as session:
        everyone = access.list_members(session, owner, after=None, limit=50)
        page = access.list_members(session, owner, after=None, limit=2)
        rest = access.list_members(session, owner, after=page[-1].user_id, limit=2)
    assert {m.user_id for m in everyone} == {users["ann"], users["bob"], users["cat"]}
    assert [m.user_id for m in page + rest] == sorted(m.user_id for m in everyone)


def test_every_change_lands_on_the_tenants_chain(rig, access, users, audit_log):
    tenant = _tenant(rig, access, users["ann"])
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.MEMBER)
    owner = _context(rig, access, users["ann"], "acme")
    with rig.uow.begin() as session:
        access.change_role(session, owner, user_id=users["bob"], role=Role.VIEWER, client=CLIENT)
    with rig.uow.begin() as session:
        access.remove_member(session, owner, user_id=users["bob"], client=CLIENT)
    with rig.uow.begin() as session:
        page = AuditQuery(audit_log=audit_log).search(
            session, tenant.id, AuditFilter(action="access.")
        )
    assert [item.action for item in reversed(page.items)] == [
        "access.tenant_created",
        "access.member_added",
        "access.member_role_changed",
        "access.member_removed",
    ]
    assert all(item.actor == audit_log.pseudonym_for(users["ann"]) for item in page.items)
    assert page.items[1].details == {"from": "member", "to": "viewer"}
    assert page.items[0].target == users["bob"]


def test_two_owners_demoting_each_other_at_once_leave_one_owner(rig, access, users):
    tenant = _tenant(rig, access, users["ann"])
    _add(rig, access, tenant, users["ann"], users["bob"], role=Role.OWNER)
    barrier = threading.Barrier(2)
    outcomes = {}

    def demote(actor, target):
        try:
            with rig.uow.begin() as session:
                context = access.resolve(session, user_id=users[actor], tenant_ref="acme")
                barrier.wait(timeout=10)
                access.change_role(
                    session, context, user_id=users[target], role=Role.ADMIN, client=CLIENT
                )
            outcomes[actor] = "done"
        except LastOwner:
            outcomes[actor] = "last owner"

    threads = [
        threading.Thread(target=demote, args=("ann", "bob")),
        threading.Thread(target=demote, args=("bob", "ann")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["done", "last owner"]
    with rig.uow.begin() as session:
        roles = session.scalars(
            select(MembershipRow.role).where(MembershipRow.tenant_id == tenant.id)
        ).all()
    assert sorted(roles) == ["admin", "owner"]


def test_my_tenants_are_paged_by_slug(rig, access, users):
    for slug in ("delta", "alpha", "charlie", "bravo"):
        _tenant(rig, access, users["ann"], slug=slug)
    with rig.uow.begin() as session:
        first = access.my_tenants(session, user_id=users["ann"], limit=3)
        rest = access.my_tenants(session, user_id=users["ann"], after=first[-1].tenant.slug)
        assert access.my_tenants(session, user_id=users["bob"]) == []
    assert [m.tenant.slug for m in first + rest] == ["alpha", "bravo", "charlie", "delta"]
