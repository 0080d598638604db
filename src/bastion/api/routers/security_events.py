"""Security events: ``/api/v1/tenants/{tenant}/security-events`` (the tenant's own, for roles
with ``detection:event:read``) and ``/api/v1/operator/security-events`` (every event, operators
with a second factor only; each such read is audited on the system chain)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from bastion.access import Permission, TenantContext
from bastion.alerts.query import SecurityEventFilter, search_all, search_tenant
from bastion.alerts.service import severity_named
from bastion.api.access import operator, requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.security_events import SecurityEventList, SecurityEventOut, SeverityName
from bastion.audit import AuditEvent
from bastion.identity import Principal

router = APIRouter(tags=["security-events"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A bad filter, since after until, or a cursor not issued here."},
    401: {"description": "No valid session."},
    403: {"description": "The role (or, operator route, the caller) may not read these."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
TypeFilter = Annotated[str | None, Query(alias="type", pattern=r"^[a-z0-9_.]{1,64}$")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=256)]


def _filters(
    type_: str | None, severity: SeverityName | None, since: datetime | None, until: datetime | None
) -> SecurityEventFilter:
    return SecurityEventFilter(
        type=type_,
        min_severity=severity_named(severity) if severity is not None else None,
        since=since,
        until=until,
    )


@router.get("/api/v1/tenants/{tenant}/security-events", responses=PROBLEMS)
def tenant_security_events(
    *,
    context: Annotated[TenantContext, requires(Permission.SECURITY_EVENT_READ)],
    session: SessionDep,
    event_type: TypeFilter = None,
    severity: SeverityName | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SecurityEventList:
    """The tenant's security events, newest first. ``type`` ending in ``.`` matches a prefix;
    ``severity`` keeps that severity and above; ``since`` inclusive, ``until`` exclusive."""
    filters = _filters(event_type, severity, since, until)
    page = search_tenant(session, context.tenant_id, filters, limit=limit, cursor=cursor)
    return SecurityEventList(
        items=[SecurityEventOut.of(item) for item in page.items], next_cursor=page.next_cursor
    )


@router.get("/api/v1/operator/security-events", responses=PROBLEMS)
def operator_security_events(
    *,
    principal: Annotated[Principal, operator()],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    event_type: TypeFilter = None,
    severity: SeverityName | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SecurityEventList:
    """Every security event (or one tenant's), newest first; same filters as the tenant route.
    The read is audited on the system chain (operator access is always on record)."""
    filters = _filters(event_type, severity, since, until)
    page = search_all(session, filters, tenant_id=tenant_id, limit=limit, cursor=cursor)
    container.audit_log.append(
        session,
        AuditEvent(
            action="security_event.operator_read",
            actor_user_id=principal.user_id,
            source_ip=client.ip,
            user_agent=client.user_agent,
            request_id=client.request_id,
            details={
                "type": event_type,
                "severity": severity,
                "tenant_id": tenant_id,
                "returned": len(page.items),
            },
        ),
    )
    return SecurityEventList(
        items=[SecurityEventOut.of(item) for item in page.items], next_cursor=page.next_cursor
    )
