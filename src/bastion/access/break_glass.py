"""Break-glass: an operator's exceptional, time-limited, read-only, recorded tenant access (P8).

Operators run the service but hold no membership, so they cannot read tenant data. In an
emergency an operator requests a grant with a reason and a duration of at most 8 hours. If the
tenant demands it (``break_glass_requires_approval``, on by default) an owner, or whoever holds
``BREAK_GLASS_APPROVE``, and never the requester, must approve it first; the duration runs from
activation. While active, ``SqlAccess.resolve`` gives the operator a read-only context
(``BREAK_GLASS_PERMISSIONS``) and ``SqlAccess.authorize`` appends ``break_glass.read`` (grant,
permission, route) to the tenant's chain for every request, in the request's transaction. A
grant that expired, was revoked or was never approved is inert: the next request is a 404, as
for any stranger. Pending requests lapse after ``PENDING_LIFETIME``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.access import recording, repository
from bastion.access.errors import (
    GrantNotFound,
    GrantNotPending,
    InvalidBreakGlass,
    SelfApproval,
    UnknownTenant,
)
from bastion.access.models import BreakGlassGrantRow, TenantRow
from bastion.access.permissions import Permission
from bastion.access.policy import read_policy
from bastion.access.types import AccessAction, TenantContext
from bastion.audit import AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.db import bind_tenant
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id

# The shape of a tenant id (``access.service.TENANT_ID_PATTERN``; not imported: it imports us).
TENANT_ID_SHAPE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_DURATION_MINUTES: Final = 480
MIN_REASON_CHARS: Final = 10
MAX_REASON_CHARS: Final = 1000
PENDING_LIFETIME: Final = timedelta(hours=24)
MAX_LIST: Final = 200
BREAK_GLASS_ROLE_NAME: Final = "break-glass"
# Read, never write: enough to investigate, nothing to change (and nothing to manage keys,
# members or settings with).
BREAK_GLASS_PERMISSIONS: Final = frozenset(
    {
        Permission.TENANT_READ,
        Permission.MEMBER_READ,
        Permission.COLLECTION_READ,
        Permission.RECORD_READ,
        Permission.AUDIT_EVENT_READ,
    }
)


# ``Session.info`` flag: this request transaction is kept even if the route then fails.
KEEP_ON_ERROR_INFO: Final = "bastion.keep_on_error"


def keep_on_error(session: Session) -> None:
    """Have the edge commit this transaction even if the route then raises: it holds a
    ``break_glass.read`` entry, and a grant is read-only, so that entry is all it can hold. A
    rolled-back probe (a 404 for a record that is not there) would leave no trace otherwise."""
    session.info[KEEP_ON_ERROR_INFO] = True


def kept_on_error(session: Session) -> bool:
    return bool(session.info.get(KEEP_ON_ERROR_INFO))


class GrantStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LAPSED = "lapsed"  # never approved within PENDING_LIFETIME


@dataclass(frozen=True, slots=True)
class BreakGlassGrant:
    id: str
    tenant_id: str
    operator_id: str
    reason: str
    duration_minutes: int
    status: GrantStatus
    requested_at: datetime
    approved_at: datetime | None
    approved_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None


def status_at(row: BreakGlassGrantRow, now: datetime) -> GrantStatus:
    if row.revoked_at is not None:
        return GrantStatus.REVOKED
    if row.approved_at is None or row.expires_at is None:
        if as_utc(row.requested_at) + PENDING_LIFETIME <= now:
            return GrantStatus.LAPSED
        return GrantStatus.PENDING
    if as_utc(row.expires_at) <= now:
        return GrantStatus.EXPIRED
    return GrantStatus.ACTIVE


def _grant(row: BreakGlassGrantRow, now: datetime) -> BreakGlassGrant:
    return BreakGlassGrant(
        id=row.id,
        tenant_id=row.tenant_id,
        operator_id=row.operator_id,
        reason=row.reason,
        duration_minutes=row.duration_minutes,
        status=status_at(row, now),
        requested_at=as_utc(row.requested_at),
        approved_at=None if row.approved_at is None else as_utc(row.approved_at),
        approved_by=row.approved_by,
        expires_at=None if row.expires_at is None else as_utc(row.expires_at),
        revoked_at=None if row.revoked_at is None else as_utc(row.revoked_at),
    )


def active_grant_for_ref(
    session: Session, *, operator_id: str, tenant_ref: str, now: datetime
) -> tuple[TenantRow, BreakGlassGrantRow] | None:
    """The tenant named by id or slug and the operator's grant on it that is active at
    ``now``, both read now; None when there is no such grant."""
    rows = session.scalars(
        select(BreakGlassGrantRow)
        .where(
            BreakGlassGrantRow.operator_id == operator_id,
            BreakGlassGrantRow.revoked_at.is_(None),
            BreakGlassGrantRow.approved_at.is_not(None),
            BreakGlassGrantRow.expires_at > now,
        )
        .order_by(BreakGlassGrantRow.expires_at.desc())
        .limit(MAX_LIST)
    )
    # The comparison above already excludes expired grants; status_at re-checks in Python so a
    # naive SQLite datetime can never make an expired grant look active.
    for row in rows:
        if status_at(row, now) is not GrantStatus.ACTIVE:
            continue
        # Row-level security: the grant entitles this transaction to see its tenant.
        bind_tenant(session, row.tenant_id)
        tenant = session.get(TenantRow, row.tenant_id)
        if tenant is not None and tenant_ref in (tenant.id, tenant.slug):
            return tenant, row
    return None


class SqlBreakGlass:
    """Requests, approvals, revocations and listings of break-glass grants."""

    def __init__(self, *, audit_log: AuditLog, clock: Clock) -> None:
        self._audit = audit_log
        self._clock = clock

    def request(
        self,
        session: Session,
        *,
        operator_id: str,
        tenant_ref: str,
        reason: str,
        duration_minutes: int,
        client: ClientInfo,
    ) -> BreakGlassGrant:
        """A new grant for ``operator_id`` (an operator, checked by the edge) on the tenant
        named by id or slug: active at once when the tenant does not require approval, pending
        otherwise. UnknownTenant (404) or InvalidBreakGlass (422), audited."""
        if TENANT_ID_SHAPE.fullmatch(tenant_ref):
            # Row-level security shows an operator no tenant by default; the request names
            # the one it is about, and only its row, settings and audit chain are touched.
            bind_tenant(session, tenant_ref)
        tenant = repository.tenant_by_ref(session, tenant_ref)
        if tenant is None:
            self._refuse(session, None, operator_id, client, reason="unknown tenant")
            raise UnknownTenant
        bind_tenant(session, tenant.id)
        reason = reason.strip()
        if not MIN_REASON_CHARS <= len(reason) <= MAX_REASON_CHARS or not (
            1 <= duration_minutes <= MAX_DURATION_MINUTES
        ):
            self._refuse(session, tenant.id, operator_id, client, reason="invalid request")
            raise InvalidBreakGlass
        now = self._clock.now()
        needs_approval = read_policy(session, tenant.id).break_glass_requires_approval
        row = BreakGlassGrantRow(
            id=new_id(),
            tenant_id=tenant.id,
            operator_id=operator_id,
            reason=reason,
            duration_minutes=duration_minutes,
            requested_at=now,
            approved_at=None if needs_approval else now,
            expires_at=None if needs_approval else now + timedelta(minutes=duration_minutes),
        )
        session.add(row)
        session.flush()
        self._record(
            session,
            tenant.id,
            AccessAction.BREAK_GLASS_REQUESTED,
            actor=operator_id,
            grant=row.id,
            client=client,
            details={
                "reason": reason,
                "duration_minutes": duration_minutes,
                "requires_approval": needs_approval,
            },
        )
        return _grant(row, now)

    def for_tenant(self, session: Session, context: TenantContext) -> list[BreakGlassGrant]:
        """The tenant's grants, newest first (what operators asked for, and when)."""
        now = self._clock.now()
        rows = session.scalars(
            select(BreakGlassGrantRow)
            .where(BreakGlassGrantRow.tenant_id == context.tenant_id)
            .order_by(BreakGlassGrantRow.requested_at.desc(), BreakGlassGrantRow.id)
            .limit(MAX_LIST)
        )
        return [_grant(row, now) for row in rows]

    def for_operator(self, session: Session, operator_id: str) -> list[BreakGlassGrant]:
        """The operator's own grants, newest first."""
        now = self._clock.now()
        rows = session.scalars(
            select(BreakGlassGrantRow)
            .where(BreakGlassGrantRow.operator_id == operator_id)
            .order_by(BreakGlassGrantRow.requested_at.desc(), BreakGlassGrantRow.id)
            .limit(MAX_LIST)
        )
        return [_grant(row, now) for row in rows]

    def approve(
        self, session: Session, context: TenantContext, grant_id: str, *, client: ClientInfo
    ) -> BreakGlassGrant:
        """Activate a pending grant of this tenant for its duration, from now.

        GrantNotFound (404: none in this tenant), SelfApproval (403), GrantNotPending (409);
        each audited on the tenant's chain.
        """
        row = self._row(session, context, grant_id, client=client)
        now = self._clock.now()
        if row.operator_id == context.user_id:
            self._refuse(
                session, context.tenant_id, context.user_id, client, reason="self approval"
            )
            raise SelfApproval
        if status_at(row, now) is not GrantStatus.PENDING:
            self._refuse(session, context.tenant_id, context.user_id, client, reason="not pending")
            raise GrantNotPending
        row.approved_at = now
        row.approved_by = context.user_id
        row.expires_at = now + timedelta(minutes=row.duration_minutes)
        session.flush()
        self._record(
            session,
            context.tenant_id,
            AccessAction.BREAK_GLASS_APPROVED,
            actor=context.user_id,
            grant=row.id,
            client=client,
            details={"operator": row.operator_id, "expires_at": _iso(row.expires_at)},
        )
        return _grant(row, now)

    def revoke(
        self, session: Session, context: TenantContext, grant_id: str, *, client: ClientInfo
    ) -> BreakGlassGrant:
        """End a grant of this tenant now (the operator's next request is a 404). Revoking an
        already revoked grant changes nothing. GrantNotFound (404, audited)."""
        row = self._row(session, context, grant_id, client=client)
        return self._revoke(session, row, actor=context.user_id, client=client)

    def revoke_own(
        self, session: Session, *, operator_id: str, grant_id: str, client: ClientInfo
    ) -> BreakGlassGrant:
        """The requesting operator ends their own grant early. GrantNotFound (404, audited)."""
        row = session.get(BreakGlassGrantRow, grant_id) if len(grant_id) <= 36 else None
        if row is None or row.operator_id != operator_id:
            self._refuse(session, None, operator_id, client, reason="unknown grant")
            raise GrantNotFound
        bind_tenant(session, row.tenant_id)  # the grant's tenant: its row and audit chain
        return self._revoke(session, row, actor=operator_id, client=client)

    def _revoke(
        self, session: Session, row: BreakGlassGrantRow, *, actor: str, client: ClientInfo
    ) -> BreakGlassGrant:
        now = self._clock.now()
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoked_by = actor
            session.flush()
            self._record(
                session,
                row.tenant_id,
                AccessAction.BREAK_GLASS_REVOKED,
                actor=actor,
                grant=row.id,
                client=client,
                details={"operator": row.operator_id},
            )
        return _grant(row, now)

    def _row(
        self, session: Session, context: TenantContext, grant_id: str, *, client: ClientInfo
    ) -> BreakGlassGrantRow:
        # Always within the caller's tenant: another tenant's grant is a 404 like a missing one.
        row = session.get(BreakGlassGrantRow, grant_id) if len(grant_id) <= 36 else None
        if row is None or row.tenant_id != context.tenant_id:
            self._refuse(
                session, context.tenant_id, context.user_id, client, reason="unknown grant"
            )
            raise GrantNotFound
        return row

    def _record(
        self,
        session: Session,
        tenant_id: str,
        action: AccessAction,
        *,
        actor: str,
        grant: str,
        client: ClientInfo,
        details: dict[str, JsonValue],
    ) -> None:
        recording.record(
            self._audit,
            session,
            tenant_id,
            action,
            actor=actor,
            target=grant,
            client=client,
            details=details,
        )

    def _refuse(
        self,
        session: Session,
        tenant_id: str | None,
        actor: str,
        client: ClientInfo,
        *,
        reason: str,
    ) -> None:
        recording.record(
            self._audit,
            session,
            tenant_id,
            AccessAction.BREAK_GLASS_REFUSED,
            actor=actor,
            target=None,
            client=client,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()
