"""Audit events of the records domain: who did what to which collection or record.

Details carry names, ids, versions and counts only, never record contents or filter values
(a filter value is record content).
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.access import TenantContext
from bastion.audit import AuditEvent
from bastion.audit.events import JsonValue
from bastion.identity import ClientInfo
from bastion.records.types import RecordsAction


def event_for(
    context: TenantContext,
    action: RecordsAction,
    *,
    target: str,
    client: ClientInfo,
    details: Mapping[str, JsonValue],
) -> AuditEvent:
    """An event by the context's member, on the tenant's own chain."""
    return AuditEvent(
        action=action.value,
        tenant_id=context.tenant_id,
        actor_user_id=context.user_id,
        target=target,
        source_ip=client.ip,
        user_agent=client.user_agent,
        request_id=client.request_id,
        details=details,
    )


def record_target(collection: str, record_id: str) -> str:
    return f"{collection}/{record_id}"
