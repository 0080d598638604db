"""Break-glass grants: operators ask (``/api/v1/operator/break-glass``), tenants see and decide
(``/api/v1/tenants/{tenant}/break-glass``).

An active grant lets its operator call the tenant's read routes (``requires`` resolves a
read-only context for them); every such request is on the tenant's audit chain. See
``bastion.access.break_glass`` and docs/access.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from bastion.access import Permission, TenantContext
from bastion.access.break_glass import BreakGlassGrant
from bastion.api.access import operator, requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.governance import BreakGlassRequest, GrantList, GrantOut
from bastion.identity import Principal

operator_router = APIRouter(prefix="/api/v1/operator/break-glass", tags=["break-glass"])
tenant_router = APIRouter(prefix="/api/v1/tenants/{tenant}/break-glass", tags=["break-glass"])

OPERATOR_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Not an operator with an enrolled second factor."},
    404: {"description": "No such tenant or grant (audited)."},
    422: {"description": "No reason, or a duration outside 1..480 minutes (audited)."},
}
TENANT_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "The role lacks the permission, or self-approval (audited)."},
    404: {"description": "No such tenant or grant (audited)."},
    409: {"description": "The grant is not awaiting approval (audited)."},
}
GrantPath = Annotated[str, Path(min_length=1, max_length=36)]
Operator = Annotated[Principal, operator()]


def _out(grant: BreakGlassGrant) -> GrantOut:
    return GrantOut(
        id=grant.id,
        tenant_id=grant.tenant_id,
        operator_id=grant.operator_id,
        reason=grant.reason,
        duration_minutes=grant.duration_minutes,
        status=grant.status.value,
        requested_at=grant.requested_at,
        approved_at=grant.approved_at,
        approved_by=grant.approved_by,
        expires_at=grant.expires_at,
        revoked_at=grant.revoked_at,
    )


@operator_router.post("", status_code=status.HTTP_201_CREATED, responses=OPERATOR_PROBLEMS)
def request_grant(
    body: BreakGlassRequest,
    principal: Operator,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> GrantOut:
    """Ask for read-only access to a tenant (id or slug) for at most 480 minutes, with a
    reason. Active at once if the tenant does not require approval, ``pending`` otherwise."""
    grant = container.governance.break_glass.request(
        session,
        operator_id=principal.user_id,
        tenant_ref=body.tenant,
        reason=body.reason,
        duration_minutes=body.duration_minutes,
        client=client,
    )
    return _out(grant)


@operator_router.get("", responses=OPERATOR_PROBLEMS)
def my_grants(principal: Operator, container: ContainerDep, session: SessionDep) -> GrantList:
    """The calling operator's own grants, newest first, with their status now."""
    grants = container.governance.break_glass.for_operator(session, principal.user_id)
    return GrantList(items=[_out(g) for g in grants])


@operator_router.post("/{grant}/revoke", responses=OPERATOR_PROBLEMS)
def end_my_grant(
    grant: GrantPath,
    principal: Operator,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> GrantOut:
    """End one's own grant early."""
    ended = container.governance.break_glass.revoke_own(
        session, operator_id=principal.user_id, grant_id=grant, client=client
    )
    return _out(ended)


@tenant_router.get("", responses=TENANT_PROBLEMS)
def tenant_grants(
    context: Annotated[TenantContext, requires(Permission.AUDIT_EVENT_READ)],
    container: ContainerDep,
    session: SessionDep,
) -> GrantList:
    """Every break-glass request on this tenant (newest first, up to 200), with its status."""
    grants = container.governance.break_glass.for_tenant(session, context)
    return GrantList(items=[_out(g) for g in grants])


@tenant_router.post("/{grant}/approve", responses=TENANT_PROBLEMS)
def approve_grant(
    grant: GrantPath,
    context: Annotated[TenantContext, requires(Permission.BREAK_GLASS_APPROVE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> GrantOut:
    """Approve a pending request; its duration runs from now."""
    approved = container.governance.break_glass.approve(session, context, grant, client=client)
    return _out(approved)


@tenant_router.post("/{grant}/revoke", responses=TENANT_PROBLEMS)
def revoke_grant(
    grant: GrantPath,
    context: Annotated[TenantContext, requires(Permission.BREAK_GLASS_APPROVE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> GrantOut:
    """End a grant now (pending or active); the operator's next request is a 404."""
    revoked = container.governance.break_glass.revoke(session, context, grant, client=client)
    return _out(revoked)
