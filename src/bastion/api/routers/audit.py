"""``/api/v1/tenants/{tenant}/audit``: query and export a tenant's audit chain.

Owners and auditors only (``audit:event:read`` / ``audit:event:export``); the chain read is always
the resolved tenant's own, never one named by the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from bastion.access import Permission, TenantContext
from bastion.api.access import requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.access import AuditEventList, AuditEventOut
from bastion.audit import AuditFilter, AuditQuery, Outcome, export_lines
from bastion.audit.events import chain_for
from bastion.bootstrap import Container
from bastion.db import bind_tenant

router = APIRouter(prefix="/api/v1/tenants/{tenant}/audit", tags=["audit"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A cursor not issued for this chain, or a time without a zone."},
    401: {"description": "No valid session."},
    403: {"description": "Only owners and auditors read the audit log (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
JSON_LINES = "application/jsonl"
Text = Annotated[str | None, Query(min_length=1, max_length=256)]


@router.get("", responses=PROBLEMS)
def search_audit(
    *,
    context: Annotated[TenantContext, requires(Permission.AUDIT_EVENT_READ)],
    container: ContainerDep,
    session: SessionDep,
    actor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    target: Text = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> AuditEventList:
    """The tenant's events, newest first. ``actor`` is a user id (matched by its pseudonym);
    ``action`` ending in ``.`` matches a prefix; ``since`` is inclusive, ``until`` exclusive."""
    query = AuditQuery(audit_log=container.audit_log)
    filters = AuditFilter(
        actor_user_id=actor,
        action=action,
        target=target,
        outcome=outcome,
        since=since,
        until=until,
    )
    page = query.search(session, context.tenant_id, filters, limit=limit, cursor=cursor)
    return AuditEventList(
        items=[
            AuditEventOut(
                seq=item.seq,
                time=item.time,
                actor=item.actor,
                action=item.action,
                target=item.target,
                outcome=item.outcome,
                source_ip=item.source_ip,
                user_agent=item.user_agent,
                request_id=item.request_id,
                details=item.details,
                hash=item.hash,
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )


def _stream(container: Container, tenant_id: str) -> Iterator[str]:
    # Its own connection: the response streams after the request transaction has committed
    # (which also puts the export's own audit entry inside the exported chain). The request
    # path's role, bound to the tenant: row-level security guards the export too.
    with container.request_engine.begin() as connection:
        bind_tenant(connection, tenant_id)
        for line in export_lines(connection, chain_for(tenant_id), now=container.clock.now()):
            yield line + "\n"


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={**PROBLEMS, 200: {"content": {JSON_LINES: {}}, "description": "JSON Lines."}},
)
def export_audit(
    context: Annotated[TenantContext, requires(Permission.AUDIT_EVENT_EXPORT)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> StreamingResponse:
    """The tenant's whole chain as JSON Lines (header, events, signed checkpoints), verifiable
    offline with ``bastion audit verify --file``. The export itself is audited."""
    container.access.record_audit_export(session, context, client=client)
    chain = chain_for(context.tenant_id)
    return StreamingResponse(
        _stream(container, context.tenant_id),
        media_type=JSON_LINES,
        headers={"Content-Disposition": f'attachment; filename="audit-{chain}.jsonl"'},
    )
