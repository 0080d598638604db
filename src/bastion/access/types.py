"""Access value types: what other packages and the edge see instead of rows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NewType

from bastion.access.permissions import Permission, Role, is_allowed

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


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The tenant of one request, resolved from the caller's membership as read from the
    database during this request (never cached, so a removal or downgrade applies at once)."""

    tenant: Tenant
    user_id: str
    role: Role

    @property
    def tenant_id(self) -> TenantId:
        return self.tenant.id

    def has_permission(self, permission: Permission) -> bool:
        return is_allowed(self.role, permission)


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation as its creator sees it (the token went by e-mail and is never shown)."""

    id: str
    email: str
    role: Role
    expires_at: datetime
