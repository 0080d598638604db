"""Request and response shapes of the tenant, member and audit endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from bastion.access import Role

TenantName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# The exact slug rule (and "not shaped like a tenant id") is the service's; this bounds size.
Slug = Annotated[str, StringConstraints(min_length=1, max_length=63)]
UserIdField = Annotated[str, StringConstraints(min_length=1, max_length=36)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateTenantRequest(_Request):
    name: TenantName
    slug: Slug


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str


class MyTenant(TenantOut):
    role: Role


class MyTenantList(BaseModel):
    items: list[MyTenant]
    next_cursor: str | None = None


class AddMemberRequest(_Request):
    user_id: UserIdField
    role: Role


class ChangeRoleRequest(_Request):
    role: Role


class MemberOut(BaseModel):
    user_id: str
    role: Role
    joined_at: datetime
    # A custom role of the tenant that replaces ``role``'s permissions while set.
    custom_role: str | None = None


class MemberList(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None


class AuditEventOut(BaseModel):
    seq: int
    time: str
    actor: str | None
    action: str
    target: str | None
    outcome: str
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    hash: str


class AuditEventList(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class InviteRequest(_Request):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    role: Role


class InvitationOut(BaseModel):
    id: str
    email: str
    role: Role
    expires_at: datetime


class AcceptedInvitation(BaseModel):
    tenant: TenantOut
    role: Role


class InvitationList(BaseModel):
    items: list[InvitationOut]
    next_cursor: str | None
