"""Queries over ``tenants`` and ``memberships``. Every membership query names its tenant.

Rows never leave this module and the service; callers get ``bastion.access.types`` values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from bastion.access.models import InvitationRow, MembershipRow, TenantRoleRow, TenantRow
from bastion.access.permissions import Role


def tenant_by_slug(session: Session, slug: str) -> TenantRow | None:
    return session.scalars(select(TenantRow).where(TenantRow.slug == slug)).one_or_none()


def tenant_by_ref(session: Session, ref: str) -> TenantRow | None:
    """The tenant named by id or slug (no membership involved: operator paths only)."""
    if not ref or len(ref) > 63:  # the longest slug
        return None
    return session.scalars(
        select(TenantRow).where((TenantRow.id == ref) | (TenantRow.slug == ref))
    ).first()


def add_tenant(
    session: Session, *, tenant_id: str, slug: str, name: str, now: datetime
) -> TenantRow:
    row = TenantRow(id=tenant_id, slug=slug, name=name, created_at=now)
    session.add(row)
    session.flush()
    return row


# Every tenant request resolves its tenant through the caller's membership: one statement per
# form of reference, built once, read as plain columns (no ORM entities: building and loading
# them cost more CPU per request than the query itself, bench/bench_records.py).
_TENANTS = TenantRow.__table__
_MEMBERSHIPS = MembershipRow.__table__
_MEMBERSHIP_OF: Final = (
    select(
        _TENANTS.c.id,
        _TENANTS.c.slug,
        _TENANTS.c.name,
        _TENANTS.c.created_at,
        _MEMBERSHIPS.c.role,
        _MEMBERSHIPS.c.custom_role_id,
    )
    .select_from(_TENANTS.join(_MEMBERSHIPS, _MEMBERSHIPS.c.tenant_id == _TENANTS.c.id))
    .where(_MEMBERSHIPS.c.user_id == bindparam("user_id"))
)
_MEMBERSHIP_BY_ID: Final = _MEMBERSHIP_OF.where(_TENANTS.c.id == bindparam("ref"))
_MEMBERSHIP_BY_SLUG: Final = _MEMBERSHIP_OF.where(_TENANTS.c.slug == bindparam("ref"))


def membership_for(
    session: Session, *, user_id: str, tenant_id: str | None = None, slug: str | None = None
) -> Row[str, str, str, datetime, str, str | None] | None:
    """The tenant (by id or by slug) joined with ``user_id``'s membership, as one plain row
    (``id``, ``slug``, ``name``, ``created_at`` of the tenant; ``role``, ``custom_role_id``);
    None when either is missing, so "no such tenant" and "not a member" are indistinguishable
    to the caller."""
    if tenant_id is not None:
        statement, ref = _MEMBERSHIP_BY_ID, tenant_id
    elif slug is not None:
        statement, ref = _MEMBERSHIP_BY_SLUG, slug
    else:
        return None
    return session.connection().execute(statement, {"user_id": user_id, "ref": ref}).one_or_none()


def memberships_of_user(
    session: Session, user_id: str, *, after_slug: str | None, limit: int
) -> list[tuple[TenantRow, MembershipRow]]:
    statement = (
        select(TenantRow, MembershipRow)
        .join(MembershipRow, MembershipRow.tenant_id == TenantRow.id)
        .where(MembershipRow.user_id == user_id)
    )
    if after_slug is not None:
        statement = statement.where(TenantRow.slug > after_slug)
    statement = statement.order_by(TenantRow.slug).limit(limit)
    return [(tenant, membership) for tenant, membership in session.execute(statement).all()]


def add_membership(
    session: Session, tenant_id: str, *, user_id: str, role: Role, now: datetime
) -> MembershipRow:
    row = MembershipRow(
        tenant_id=tenant_id, user_id=user_id, role=role.value, created_at=now, updated_at=now
    )
    session.add(row)
    session.flush()
    return row


def member(session: Session, tenant_id: str, user_id: str) -> MembershipRow | None:
    return session.scalars(
        select(MembershipRow).where(
            MembershipRow.tenant_id == tenant_id, MembershipRow.user_id == user_id
        )
    ).one_or_none()


def members(
    session: Session, tenant_id: str, *, after_user_id: str | None, limit: int
) -> list[MembershipRow]:
    statement = select(MembershipRow).where(MembershipRow.tenant_id == tenant_id)
    if after_user_id is not None:
        statement = statement.where(MembershipRow.user_id > after_user_id)
    return list(session.scalars(statement.order_by(MembershipRow.user_id).limit(limit)))


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise membership changes of one tenant until commit, so two owners demoting each
    other at once cannot leave it with none.

    A no-op UPDATE rather than SELECT ... FOR UPDATE: on PostgreSQL both take the row lock, but
    only a write makes SQLite's driver open the transaction and take the write lock *before* the
    owner count is read (a plain SELECT there runs outside any transaction and could be stale).
    """
    session.execute(update(TenantRow).where(TenantRow.id == tenant_id).values(name=TenantRow.name))


def owner_count(session: Session, tenant_id: str) -> int:
    statement = select(func.count()).where(
        MembershipRow.tenant_id == tenant_id, MembershipRow.role == Role.OWNER.value
    )
    return int(session.execute(statement).scalar_one())


def delete_membership(session: Session, row: MembershipRow) -> None:
    session.delete(row)
    session.flush()


def withdraw_invitations_from(session: Session, tenant_id: str, user_id: str) -> int:
    """Delete the pending invitations ``user_id`` sent in the tenant; how many there were."""
    result = session.execute(
        delete(InvitationRow)
        .where(
            InvitationRow.tenant_id == tenant_id,
            InvitationRow.invited_by == user_id,
            InvitationRow.accepted_at.is_(None),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def custom_role_names(session: Session, tenant_id: str) -> dict[str, str]:
    """Custom role id -> name for one tenant (for listings)."""
    rows = session.execute(
        select(TenantRoleRow.id, TenantRoleRow.name).where(TenantRoleRow.tenant_id == tenant_id)
    )
    return {str(role_id): str(name) for role_id, name in rows}


def tenants_solely_owned_by(session: Session, user_id: str) -> list[TenantRow]:
    """The tenants where ``user_id`` is the only owner (for the last-owner rule)."""
    owners = (
        select(MembershipRow.tenant_id)
        .where(MembershipRow.role == Role.OWNER.value)
        .group_by(MembershipRow.tenant_id)
        .having(func.count() == 1)
        .subquery()
    )
    statement = (
        select(TenantRow)
        .join(MembershipRow, MembershipRow.tenant_id == TenantRow.id)
        .where(
            MembershipRow.user_id == user_id,
            MembershipRow.role == Role.OWNER.value,
            TenantRow.id.in_(select(owners.c.tenant_id)),
        )
        .order_by(TenantRow.slug)
    )
    return list(session.scalars(statement))
