"""Access: tenants, memberships, roles and permissions (DESIGN invariant 1, "tenant scoping").

Owns the ``tenants`` and ``memberships`` tables, the ``Permission`` vocabulary and the one
role-to-permission matrix (``permissions``). Decides whether a principal may do something in a
tenant, always from the membership as stored at the time of the request. Never imports the api,
cli or web edges, never commits, and never caches a membership or a role (revocation is
immediate across processes). Invitations go out by e-mail (``invitations``). Tenant-bound API
keys (``api_keys``) act as their creator, never beyond the creator's current role.

Tenant governance (issue 6), built together in ``governance``: tenant settings (``policy``: an IP
allow-list checked first, then a required second factor, on every tenant request, inside
``SqlAccess.authorize``), custom roles read on every request (``roles``), operators' break-glass
grants, read-only and audited per request (``break_glass``), and access reviews (``review``).
"""

from bastion.access.api_keys import ApiKey, IssuedApiKey, SqlApiKeys
from bastion.access.errors import (
    AccessError,
    AlreadyMember,
    InvalidSlug,
    InvitationInvalid,
    InvitationNotFound,
    LastOwner,
    MemberNotFound,
    PermissionDenied,
    SlugTaken,
    TenantNotFound,
)
from bastion.access.invitations import InvitationKeys, SqlInvitations
from bastion.access.permissions import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    is_allowed,
    permissions_of,
)
from bastion.access.service import Access, SqlAccess, TenantKeys
from bastion.access.types import (
    AccessAction,
    Invitation,
    Member,
    Tenant,
    TenantContext,
    TenantId,
    TenantMembership,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "Access",
    "AccessAction",
    "AccessError",
    "AlreadyMember",
    "ApiKey",
    "InvalidSlug",
    "Invitation",
    "InvitationInvalid",
    "InvitationKeys",
    "InvitationNotFound",
    "IssuedApiKey",
    "LastOwner",
    "Member",
    "MemberNotFound",
    "Permission",
    "PermissionDenied",
    "Role",
    "SlugTaken",
    "SqlAccess",
    "SqlApiKeys",
    "SqlInvitations",
    "Tenant",
    "TenantContext",
    "TenantId",
    "TenantKeys",
    "TenantMembership",
    "TenantNotFound",
    "is_allowed",
    "permissions_of",
]
