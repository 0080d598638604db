"""The role -> permission matrix: its shape, its least-privilege promises, and its documentation."""

import re
from pathlib import Path

import pytest

from bastion.access import ROLE_PERMISSIONS, Permission, Role, is_allowed, permissions_of

DOCS = Path(__file__).parents[3] / "docs" / "access.md"
PERMISSION_VALUE = re.compile(r"[a-z]+:[a-z_]+:[a-z_]+")


def test_every_role_has_a_row_and_every_permission_is_domain_resource_action():
    assert set(ROLE_PERMISSIONS) == set(Role)
    for permission in Permission:
        assert PERMISSION_VALUE.fullmatch(permission.value), permission


def test_owner_holds_every_permission():
    assert permissions_of(Role.OWNER) == frozenset(Permission)


def test_the_auditor_reads_the_audit_log_access_reviews_and_security_events_and_nothing_else():
    assert permissions_of(Role.AUDITOR) == {
        Permission.AUDIT_EVENT_READ,
        Permission.AUDIT_EVENT_EXPORT,
        Permission.ACCESS_REVIEW_READ,
        Permission.SECURITY_EVENT_READ,
    }


def test_viewers_read_records_and_never_write_them():
    assert is_allowed(Role.VIEWER, Permission.RECORD_READ)
    assert not is_allowed(Role.VIEWER, Permission.RECORD_WRITE)
    assert not is_allowed(Role.VIEWER, Permission.RECORD_DELETE)
    assert not is_allowed(Role.AUDITOR, Permission.RECORD_READ)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.AUDITOR])
def test_only_owners_change_tenant_settings_roles_and_approve_break_glass(role):
    for permission in (
        Permission.TENANT_SETTINGS_UPDATE,
        Permission.ROLE_MANAGE,
        Permission.BREAK_GLASS_APPROVE,
    ):
        assert not is_allowed(role, permission)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_only_owners_and_auditors_read_the_audit_log(role):
    assert not is_allowed(role, Permission.AUDIT_EVENT_READ)
    assert not is_allowed(role, Permission.AUDIT_EVENT_EXPORT)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.AUDITOR])
def test_only_owners_manage_owners(role):
    assert not is_allowed(role, Permission.OWNER_MANAGE)


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER, Role.AUDITOR])
def test_members_viewers_and_auditors_change_no_membership(role):
    for permission in (Permission.MEMBER_ADD, Permission.MEMBER_UPDATE, Permission.MEMBER_REMOVE):
        assert not is_allowed(role, permission)


def test_an_unknown_role_grants_nothing():
    assert permissions_of("superuser") == frozenset()  # type: ignore[arg-type]


def _documented_matrix():
    """{permission: {role: bool}} from the permission table in docs/access.md."""
    text = DOCS.read_text().splitlines()
    header = next(line for line in text if line.startswith("| Permission"))
    roles = [cell.strip() for cell in header.strip("|").split("|")[1:]]
    matrix = {}
    for line in text:
        if not line.startswith("| `") or not PERMISSION_VALUE.fullmatch(line.split("`")[1]):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        matrix[cells[0].strip("`")] = {
            role: cell == "✓" for role, cell in zip(roles, cells[1:], strict=True)
        }
    return matrix


def test_docs_access_md_shows_exactly_this_matrix():
    documented = _documented_matrix()
    assert set(documented) == {p.value for p in Permission}
    for permission in Permission:
        for role in Role:
            assert documented[permission.value][role.value] == is_allowed(role, permission), (
                permission,
                role,
            )
