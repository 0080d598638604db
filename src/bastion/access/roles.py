"""Custom roles: per-tenant named sets of permissions drawn from ``Permission``.

A member holding a custom role gets exactly its permissions, read from the database on every
request (``load_role``, called by ``SqlAccess.resolve``): editing or deleting a role applies at
once in every process. Three permissions can never be part of a custom role, so no custom role
is a path to ownership: ``OWNER_MANAGE`` (making owners), ``ROLE_MANAGE`` (which would let the
holder add any permission to its own role) and ``TENANT_SETTINGS_UPDATE`` (which could lift the
tenant's MFA requirement and IP allow-list). Owners cannot hold a custom role (the last-owner
rule counts built-in owners). Built-in role names stay reserved.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.access import recording, repository
from bastion.access.errors import (
    InvalidRoleName,
    RoleInUse,
    RoleNameTaken,
    RoleNotFound,
    RoleNotGrantable,
    UnknownMember,
    UnknownPermission,
    UnknownRole,
)
from bastion.access.models import MembershipRow, TenantRoleRow
from bastion.access.permissions import Permission, Role
from bastion.access.types import AccessAction, Member, TenantContext
from bastion.audit import AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id

if TYPE_CHECKING:
    from bastion.access.service import SqlAccess

NEVER_GRANTABLE: Final = frozenset(
    {Permission.OWNER_MANAGE, Permission.ROLE_MANAGE, Permission.TENANT_SETTINGS_UPDATE}
)
ROLE_NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{2,39}")
# Names that would read as something they are not: the built-in roles, and what a break-glass
# operator's context is called.
RESERVED_NAMES: Final = frozenset({role.value for role in Role} | {"break-glass", "custom"})
MAX_ROLES_PER_TENANT: Final = 100


@dataclass(frozen=True, slots=True)
class CustomRole:
    id: str
    name: str
    description: str | None
    permissions: frozenset[Permission]
    created_at: datetime
    updated_at: datetime


def _stored_permissions(text: str) -> frozenset[Permission]:
    # A value this code no longer knows grants nothing (fail closed), never an error per request.
    known = {permission.value for permission in Permission}
    return frozenset(Permission(value) for value in json.loads(text) if value in known)


def load_role(session: Session, tenant_id: str, role_id: str) -> CustomRole | None:
    """The custom role ``role_id`` of ``tenant_id`` as stored now; None if it is not there."""
    row = session.get(TenantRoleRow, role_id)
    if row is None or row.tenant_id != tenant_id:
        return None
    return _role(row)


def _role(row: TenantRoleRow) -> CustomRole:
    return CustomRole(
        id=row.id,
        name=row.name,
        description=row.description,
        permissions=_stored_permissions(row.permissions) - NEVER_GRANTABLE,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class SqlRoles:
    """Create, change, delete and assign custom roles. Every refusal is audited and changes
    nothing; every change is on the tenant's chain."""

    def __init__(self, *, access: SqlAccess, audit_log: AuditLog, clock: Clock) -> None:
        self._access = access
        self._audit = audit_log
        self._clock = clock

    def all(self, session: Session, context: TenantContext) -> list[CustomRole]:
        rows = session.scalars(
            select(TenantRoleRow)
            .where(TenantRoleRow.tenant_id == context.tenant_id)
            .order_by(TenantRoleRow.name)
            .limit(MAX_ROLES_PER_TENANT)
        )
        return [_role(row) for row in rows]

    def get(
        self, session: Session, context: TenantContext, ref: str, *, client: ClientInfo
    ) -> CustomRole:
        """One role of this tenant by id or name; RoleNotFound (404, audited) otherwise."""
        return _role(self._row(session, context, ref, client=client))

    def create(
        self,
        session: Session,
        context: TenantContext,
        *,
        name: str,
        description: str | None,
        permissions: list[str],
        client: ClientInfo,
    ) -> CustomRole:
        """A new custom role. InvalidRoleName, UnknownPermission, RoleNotGrantable (422) or
        RoleNameTaken (409), each audited."""
        self._check_name(session, context, name, client=client)
        granted = self._checked_permissions(session, context, permissions, client=client)
        if self._by_name(session, context, name) is not None:
            self._refuse(session, context, client, reason="name taken", target=name)
            raise RoleNameTaken
        now = self._clock.now()
        row = TenantRoleRow(
            id=new_id(),
            tenant_id=context.tenant_id,
            name=name,
            description=description,
            permissions=_dump(granted),
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            self._refuse(session, context, client, reason="name taken", target=name)
            raise RoleNameTaken from None
        self._record(
            session,
            context,
            AccessAction.ROLE_CREATED,
            target=row.id,
            client=client,
            details={"name": name, "permissions": _values(granted)},
        )
        return _role(row)

    def update(
        self,
        session: Session,
        context: TenantContext,
        ref: str,
        *,
        name: str | None,
        description: str | None,
        permissions: list[str] | None,
        client: ClientInfo,
    ) -> CustomRole:
        """Change a role's name, description or permissions; members holding it get the new
        permissions on their next request. Refusals as for ``create``."""
        row = self._row(session, context, ref, client=client)
        before = _role(row)
        if name is not None and name != row.name:
            self._check_name(session, context, name, client=client)
            if self._by_name(session, context, name) is not None:
                self._refuse(session, context, client, reason="name taken", target=name)
                raise RoleNameTaken
        granted = (
            before.permissions
            if permissions is None
            else self._checked_permissions(session, context, permissions, client=client)
        )
        row.name = name if name is not None else row.name
        row.description = description if description is not None else row.description
        row.permissions = _dump(granted)
        row.updated_at = self._clock.now()
        session.flush()
        self._record(
            session,
            context,
            AccessAction.ROLE_UPDATED,
            target=row.id,
            client=client,
            details={
                "name": row.name,
                "from": _values(before.permissions),
                "to": _values(granted),
            },
        )
        return _role(row)

    def delete(
        self, session: Session, context: TenantContext, ref: str, *, client: ClientInfo
    ) -> None:
        """Delete a role nobody holds; RoleInUse (409, audited) otherwise."""
        row = self._row(session, context, ref, client=client)
        holders = session.execute(
            select(func.count()).where(
                MembershipRow.tenant_id == context.tenant_id,
                MembershipRow.custom_role_id == row.id,
            )
        ).scalar_one()
        if holders:
            self._refuse(session, context, client, reason="role in use", target=row.id)
            raise RoleInUse(holders=int(holders))
        session.delete(row)
        session.flush()
        self._record(
            session,
            context,
            AccessAction.ROLE_DELETED,
            target=row.id,
            client=client,
            details={"name": row.name},
        )

    def assign(
        self,
        session: Session,
        context: TenantContext,
        *,
        user_id: str,
        role: str,
        client: ClientInfo,
    ) -> Member:
        """Give a member ``role``: a built-in role (as ``PATCH .../members/{user}``, which also
        drops any custom role) or a custom role of this tenant. UnknownRole (422) for neither;
        RoleNotGrantable (422) for an owner (demote first: the last-owner rule stays whole);
        MemberNotFound (404)."""
        builtin = _builtin(role)
        if builtin is not None:
            return self._access.change_role(
                session, context, user_id=user_id, role=builtin, client=client
            )
        custom = self._by_name(session, context, role) if len(role) <= 40 else None
        if custom is None:
            self._refuse(session, context, client, reason="unknown role", target=role[:40])
            raise UnknownRole
        repository.lock_tenant(session, context.tenant_id)
        membership = repository.member(session, context.tenant_id, user_id)
        if membership is None:
            # Another tenant's member, or nobody: the same 404, on the record.
            self._refuse(session, context, client, reason="unknown member", target=user_id[:36])
            raise UnknownMember
        if membership.role == Role.OWNER.value:
            self._refuse(
                session, context, client, reason="owners hold no custom role", target=user_id
            )
            raise RoleNotGrantable("Owners cannot hold a custom role; change their role first.")
        self._check_within_caller(session, context, _role(custom).permissions, client=client)
        previous = membership.custom_role_id
        membership.custom_role_id = custom.id
        membership.updated_at = self._clock.now()
        session.flush()
        if previous != custom.id:
            self._record(
                session,
                context,
                AccessAction.ROLE_ASSIGNED,
                target=user_id,
                client=client,
                details={"role": custom.name, "role_id": custom.id},
            )
        return Member(
            user_id=membership.user_id,
            role=Role(membership.role),
            joined_at=as_utc(membership.created_at),
            custom_role=custom.name,
        )

    # -- helpers --------------------------------------------------------------------------

    def _row(
        self, session: Session, context: TenantContext, ref: str, *, client: ClientInfo
    ) -> TenantRoleRow:
        # By id or by name, always within the caller's tenant: another tenant's role is 404.
        row = None
        if ref and len(ref) <= 40:
            row = session.scalars(
                select(TenantRoleRow).where(
                    TenantRoleRow.tenant_id == context.tenant_id,
                    (TenantRoleRow.id == ref) | (TenantRoleRow.name == ref),
                )
            ).first()
        if row is None:
            self._refuse(session, context, client, reason="unknown role", target=ref[:40])
            raise RoleNotFound
        return row

    def _by_name(self, session: Session, context: TenantContext, name: str) -> TenantRoleRow | None:
        return session.scalars(
            select(TenantRoleRow).where(
                TenantRoleRow.tenant_id == context.tenant_id, TenantRoleRow.name == name
            )
        ).one_or_none()

    def _check_name(
        self, session: Session, context: TenantContext, name: str, *, client: ClientInfo
    ) -> None:
        if ROLE_NAME_PATTERN.fullmatch(name) and name not in RESERVED_NAMES:
            return
        self._refuse(session, context, client, reason="invalid name", target=name[:40])
        raise InvalidRoleName

    def _checked_permissions(
        self, session: Session, context: TenantContext, values: list[str], *, client: ClientInfo
    ) -> frozenset[Permission]:
        known = {permission.value: permission for permission in Permission}
        unknown = [value[:64] for value in values if value not in known]
        if unknown:
            self._refuse(session, context, client, reason="unknown permission", target=unknown[0])
            raise UnknownPermission(f"No such permission: {unknown[0]!r}.", permission=unknown[0])
        granted = frozenset(known[value] for value in values)
        forbidden = sorted(granted & NEVER_GRANTABLE)
        if forbidden:
            self._refuse(
                session, context, client, reason="permission not grantable", target=forbidden[0]
            )
            raise RoleNotGrantable(
                f"A custom role may not hold {forbidden[0].value!r}.", permission=forbidden[0].value
            )
        self._check_within_caller(session, context, granted, client=client)
        return granted

    def _check_within_caller(
        self,
        session: Session,
        context: TenantContext,
        permissions: frozenset[Permission],
        *,
        client: ClientInfo,
    ) -> None:
        # An owner holds every permission, so this only bites a narrowed caller (an API key
        # with ROLE_MANAGE): it may not build or hand out a role wider than itself.
        beyond = sorted(permissions - context.permissions)
        if not beyond:
            return
        self._refuse(session, context, client, reason="beyond the caller", target=beyond[0])
        raise RoleNotGrantable(
            f"You do not hold {beyond[0].value!r}, so you cannot put it in a role.",
            permission=beyond[0].value,
        )

    def _record(
        self,
        session: Session,
        context: TenantContext,
        action: AccessAction,
        *,
        target: str,
        client: ClientInfo,
        details: dict[str, JsonValue],
    ) -> None:
        recording.record(
            self._audit,
            session,
            context.tenant_id,
            action,
            actor=context.user_id,
            target=target,
            client=client,
            details=details,
        )

    def _refuse(
        self,
        session: Session,
        context: TenantContext,
        client: ClientInfo,
        *,
        reason: str,
        target: str,
    ) -> None:
        recording.record(
            self._audit,
            session,
            context.tenant_id,
            AccessAction.ROLE_REFUSED,
            actor=context.user_id,
            target=target,
            client=client,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )


def _builtin(name: str) -> Role | None:
    try:
        return Role(name)
    except ValueError:
        return None


def _values(permissions: frozenset[Permission]) -> list[JsonValue]:
    return [permission.value for permission in sorted(permissions)]


def _dump(permissions: frozenset[Permission]) -> str:
    return json.dumps(sorted(permission.value for permission in permissions))
