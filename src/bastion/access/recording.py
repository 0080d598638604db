"""One way for the access domain's services to append to a tenant's audit chain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bastion.access.types import AccessAction
from bastion.audit import AuditEvent, AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.identity import ClientInfo


def record(
    audit_log: AuditLog,
    session: Session,
    tenant_id: str | None,
    action: AccessAction,
    *,
    actor: str | None,
    target: str | None,
    client: ClientInfo,
    outcome: Outcome = Outcome.SUCCESS,
    details: dict[str, JsonValue] | None = None,
) -> None:
    """Append ``action`` in the caller's transaction (``tenant_id`` None: the system chain).

    If the append fails the caller's transaction fails with it (DESIGN invariant 2).
    """
    audit_log.append(
        session,
        AuditEvent(
            action=action.value,
            tenant_id=tenant_id,
            actor_user_id=actor,
            target=target,
            outcome=outcome,
            source_ip=client.ip,
            user_agent=client.user_agent,
            request_id=client.request_id,
            details=details or {},
        ),
    )
