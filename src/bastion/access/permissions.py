"""The closed vocabularies of access control: roles, permissions, and the one matrix between them.

Every authorisation decision in Bastion is ``is_allowed(role, permission)`` over this matrix; no
other module hard-codes which role may do what. ``docs/access.md`` renders the same table, and a
unit test keeps the two in step. Custom per-tenant roles (issue 6) will be sets drawn from
``Permission``; the built-in roles stay as defined here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class Role(enum.StrEnum):
    """A member's role in one tenant."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    AUDITOR = "auditor"


class Permission(enum.StrEnum):
    """What a route may require, as ``domain:resource:action``."""

    TENANT_READ = "access:tenant:read"
    MEMBER_READ = "access:member:read"
    MEMBER_ADD = "access:member:add"
    MEMBER_INVITE = "access:invitation:create"
    INVITATION_READ = "access:invitation:read"
    INVITATION_REVOKE = "access:invitation:revoke"
    MEMBER_UPDATE = "access:member:update"
    MEMBER_REMOVE = "access:member:remove"
    # Granting, changing or removing the owner role: separate, so an admin who manages members
    # can never make themselves (or anyone) an owner, nor demote or remove one.
    OWNER_MANAGE = "access:owner:manage"
    ACCESS_REVIEW_READ = "access:review:read"
    AUDIT_EVENT_READ = "audit:event:read"
    AUDIT_EVENT_EXPORT = "audit:event:export"
    # Tenant settings: required second factor, IP allow-list, break-glass approval.
    TENANT_SETTINGS_UPDATE = "access:tenant:update"
    # Custom per-tenant roles built from this vocabulary.
    ROLE_MANAGE = "access:role:manage"
    # Tenant-bound API keys (the caller's own, capped by the caller's own permissions).
    API_KEY_READ = "access:apikey:read"
    API_KEY_MANAGE = "access:apikey:manage"
    # Approving an operator's break-glass request for this tenant.
    BREAK_GLASS_APPROVE = "access:breakglass:approve"
    # The tenant's own security events (lockouts, new-device logins, blocked sources).
    SECURITY_EVENT_READ = "detection:event:read"
    # Records: collections (with schema and indexed fields) and the records in them.
    COLLECTION_READ = "records:collection:read"
    COLLECTION_MANAGE = "records:collection:manage"
    RECORD_READ = "records:record:read"
    RECORD_WRITE = "records:record:write"
    RECORD_DELETE = "records:record:delete"


_MEMBER_MANAGEMENT: Final = frozenset(
    {
        Permission.MEMBER_ADD,
        Permission.MEMBER_INVITE,
        Permission.INVITATION_READ,
        Permission.INVITATION_REVOKE,
        Permission.MEMBER_UPDATE,
        Permission.MEMBER_REMOVE,
    }
)
_AUDIT: Final = frozenset(
    {Permission.AUDIT_EVENT_READ, Permission.AUDIT_EVENT_EXPORT, Permission.ACCESS_REVIEW_READ}
)
_READ: Final = frozenset({Permission.TENANT_READ, Permission.MEMBER_READ})
_RECORDS_READ: Final = frozenset({Permission.COLLECTION_READ, Permission.RECORD_READ})
_RECORDS_WRITE: Final = _RECORDS_READ | {Permission.RECORD_WRITE, Permission.RECORD_DELETE}
_OWN_API_KEYS: Final = frozenset({Permission.API_KEY_READ, Permission.API_KEY_MANAGE})

ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: _READ
    | _MEMBER_MANAGEMENT
    | _RECORDS_WRITE
    | _OWN_API_KEYS
    | {Permission.COLLECTION_MANAGE, Permission.SECURITY_EVENT_READ},
    Role.MEMBER: _READ | _RECORDS_WRITE | _OWN_API_KEYS,
    Role.VIEWER: _READ | _RECORDS_READ,
    # Need to know: the audit log, access reviews and security events, nothing else (not even
    # the member list, which the access review presents with the context an auditor needs).
    Role.AUDITOR: _AUDIT | {Permission.SECURITY_EVENT_READ},
}


def permissions_of(role: Role) -> frozenset[Permission]:
    """The permissions ``role`` grants; an unknown role grants nothing (fail closed)."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def is_allowed(role: Role, permission: Permission) -> bool:
    """True when ``role`` grants ``permission``."""
    return permission in permissions_of(role)
