"""Queries over ``api_keys``. Every query names its tenant, except the lookup by digest that
authenticates a request (no tenant is known yet) and the list of a user's tenants.

Rows never leave this module and the access services; callers get ``api_keys`` value types.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bastion.access.models import ApiKeyRow, MembershipRow


def by_token_hash(session: Session, token_hash: bytes) -> ApiKeyRow | None:
    return session.scalar(select(ApiKeyRow).where(ApiKeyRow.token_hash == token_hash))


def in_tenant(session: Session, tenant_id: str, key_id: str) -> ApiKeyRow | None:
    return session.scalar(
        select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id, ApiKeyRow.id == key_id)
    )


def listed(
    session: Session,
    tenant_id: str,
    *,
    user_id: str | None,
    after_id: str | None,
    limit: int,
) -> Sequence[ApiKeyRow]:
    """Keys of the tenant not revoked (of ``user_id`` only, unless None), ordered by id."""
    statement = select(ApiKeyRow).where(
        ApiKeyRow.tenant_id == tenant_id, ApiKeyRow.revoked_at.is_(None)
    )
    if user_id is not None:
        statement = statement.where(ApiKeyRow.user_id == user_id)
    if after_id is not None:
        statement = statement.where(ApiKeyRow.id > after_id)
    return session.scalars(statement.order_by(ApiKeyRow.id).limit(limit)).all()


def live_count(session: Session, tenant_id: str, user_id: str, now: datetime) -> int:
    statement = select(func.count()).where(
        ApiKeyRow.tenant_id == tenant_id,
        ApiKeyRow.user_id == user_id,
        ApiKeyRow.revoked_at.is_(None),
        ApiKeyRow.expires_at > now,
    )
    return int(session.execute(statement).scalar_one())


def member_tenant_ids(session: Session, user_id: str) -> Sequence[str]:
    """The tenants ``user_id`` is a member of (for revoking their keys everywhere)."""
    statement = select(MembershipRow.tenant_id).where(MembershipRow.user_id == user_id)
    return session.scalars(statement.order_by(MembershipRow.tenant_id)).all()


def live_of_member(session: Session, tenant_id: str, user_id: str) -> Sequence[ApiKeyRow]:
    """Every unrevoked key ``user_id`` created in ``tenant_id``."""
    return session.scalars(
        select(ApiKeyRow)
        .where(
            ApiKeyRow.tenant_id == tenant_id,
            ApiKeyRow.user_id == user_id,
            ApiKeyRow.revoked_at.is_(None),
        )
        .order_by(ApiKeyRow.id)
    ).all()


def revoke(
    session: Session,
    row: ApiKeyRow,
    *,
    now: datetime,
    by: str | None,
    reason: str,
) -> None:
    row.revoked_at = now
    row.revoked_by = by
    row.revoke_reason = reason
    session.flush()


def revoke_member_keys(
    session: Session,
    tenant_id: str,
    user_id: str,
    *,
    now: datetime,
    by: str | None,
    reason: str,
) -> int:
    """Revoke every key ``user_id`` created in ``tenant_id``; returns how many."""
    result = session.execute(
        update(ApiKeyRow)
        .where(
            ApiKeyRow.tenant_id == tenant_id,
            ApiKeyRow.user_id == user_id,
            ApiKeyRow.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_by=by, revoke_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
