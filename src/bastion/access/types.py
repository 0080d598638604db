"""Access value types: what other packages and the edge see instead of rows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NewType

from bastion.access.permissions import Permission, Role, permissions_of

TenantId = NewType("TenantId", str)


class AccessAction(enum.StrEnum):
    """Audit actions recorded by the access domain, on the tenant's own chain."""

    TENANT_CREATED = "access.tenant_created"
    MEMBER_ADDED = "access.member_added"
    MEMBER_ROLE_CHANGED = "access.member_role_changed"
    MEMBER_REMOVED = "access.member_removed"
    PERMISSION_DENIED = "access.permission_denied"
    AUDIT_EXPORTED = "access.audit_exported"
    INVITATION_CREATED = "access.invitation_created"
    INVITATION_ACCEPTED = "access.invitation_accepted"
    INVITATION_REVOKED = "access.invitation_revoked"
    # Issue 6: tenant policy and access governance.
    SETTINGS_CHANGED = "access.settings_changed"
    SETTINGS_REFUSED = "access.settings_refused"
    IP_REFUSED = "access.ip_refused"
    MFA_REQUIRED_REFUSED = "access.mfa_required_refused"
    ROLE_CREATED = "access.role_created"
    ROLE_UPDATED = "access.role_updated"
    ROLE_DELETED = "access.role_deleted"
    ROLE_ASSIGNED = "access.role_assigned"
    ROLE_REFUSED = "access.role_refused"
    BREAK_GLASS_REQUESTED = "break_glass.requested"
    BREAK_GLASS_APPROVED = "break_glass.approved"
    BREAK_GLASS_REVOKED = "break_glass.revoked"
    BREAK_GLASS_REFUSED = "break_glass.refused"
    BREAK_GLASS_READ = "break_glass.read"
    ACCESS_REVIEW_READ = "access_review.read"
    API_KEY_CREATED = "access.api_key_created"
    API_KEY_REVOKED = "access.api_key_revoked"
    API_KEY_REFUSED = "access.api_key_refused"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TenantMembership:
    """A tenant as one of its members sees it in "my tenants"."""

    tenant: Tenant
    role: Role


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    role: Role
    joined_at: datetime
    custom_role: str | None = None


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The tenant of one request, resolved from the caller's membership as read from the
    database during this request (never cached, so a removal or downgrade applies at once).

    ``custom_permissions`` replaces the built-in role's permissions when the member holds a
    custom role (``custom_role`` names it) or enters through a break-glass grant
    (``break_glass_grant_id``: read-only permissions, every use audited). ``permissions`` is
    the effective set; use it (never ``permissions_of(role)``) to cap what a caller grants.
    """

    tenant: Tenant
    user_id: str
    role: Role
    # Set when the caller is an API key: the key's id and its own permissions. The effective
    # permissions are these AND the creator's current role (``has_permission``), so lowering
    # the creator's role shrinks the key on its very next use.
    api_key_id: str | None = None
    api_key_permissions: frozenset[Permission] | None = None
    custom_role: str | None = None
    custom_permissions: frozenset[Permission] | None = None
    break_glass_grant_id: str | None = None

    @property
    def tenant_id(self) -> TenantId:
        return self.tenant.id

    @property
    def permissions(self) -> frozenset[Permission]:
        """The caller's effective permissions in this tenant, as read on this request: the
        custom role's (or break-glass set) if any, else the built-in role's, narrowed by an API
        key's own permissions."""
        granted = (
            self.custom_permissions
            if self.custom_permissions is not None
            else permissions_of(self.role)
        )
        if self.api_key_permissions is not None:
            return granted & self.api_key_permissions
        return granted

    def has_permission(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation as its creator sees it (the token went by e-mail and is never shown)."""

    id: str
    email: str
    role: Role
    expires_at: datetime
