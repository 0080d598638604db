"""Request and response shapes of tenant settings, custom roles and break-glass grants.

Sizes are bounded here; the rules (valid CIDRs, known permissions, durations) are the
services', so that every refusal is audited on the tenant's chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Room for the service to name a bad entry; the service caps the list at 100.
Cidr = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[
    str, StringConstraints(max_length=200, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]*$")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsOut(BaseModel):
    require_mfa: bool
    ip_allowlist: list[str]
    break_glass_requires_approval: bool


class SettingsPatch(_Request):
    require_mfa: bool | None = None
    ip_allowlist: Annotated[list[Cidr], Field(max_length=1000)] | None = None
    break_glass_requires_approval: bool | None = None
    # Accept a change that would shut the caller out (their address outside the new list, or
    # MFA required while they have none); otherwise such a change is a 409.
    confirm_lockout: bool = False


class RoleIn(_Request):
    name: RoleName
    description: Description | None = None
    permissions: Annotated[list[PermissionName], Field(max_length=100)]


class RolePatch(_Request):
    name: RoleName | None = None
    description: Description | None = None
    permissions: Annotated[list[PermissionName], Field(max_length=100)] | None = None


class RoleOut(BaseModel):
    id: str
    name: str
    description: str | None
    permissions: list[str]
    created_at: datetime
    updated_at: datetime


class RoleList(BaseModel):
    items: list[RoleOut]
    next_cursor: str | None = None


class AssignRoleRequest(_Request):
    # A built-in role (owner, admin, member, viewer, auditor) or a custom role's name.
    role: RoleName


class BreakGlassRequest(_Request):
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    duration_minutes: Annotated[int, Field(ge=-(2**31), le=2**31)]


class GrantOut(BaseModel):
    id: str
    tenant_id: str
    operator_id: str
    reason: str
    duration_minutes: int
    status: str
    requested_at: datetime
    approved_at: datetime | None
    approved_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None


class GrantList(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None = None
