"""Response shapes of the security-event endpoints (tenant and operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel

from bastion.alerts import Severity, StoredSecurityEvent

SeverityName = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_NAMES: Final[dict[Severity, SeverityName]] = {
    Severity.INFO: "info",
    Severity.LOW: "low",
    Severity.MEDIUM: "medium",
    Severity.HIGH: "high",
    Severity.CRITICAL: "critical",
}


class SecurityEventOut(BaseModel):
    id: str
    type: str
    severity: SeverityName
    subject: str
    source: str | None
    tenant_id: str | None
    occurred_at: datetime
    details: dict[str, Any]

    @classmethod
    def of(cls, stored: StoredSecurityEvent) -> SecurityEventOut:
        event = stored.event
        return cls(
            id=stored.id,
            type=event.type,
            severity=SEVERITY_NAMES[event.severity],
            subject=event.subject,
            source=event.source,
            tenant_id=event.tenant_id,
            occurred_at=stored.occurred_at,
            details=dict(event.details),
        )


class SecurityEventList(BaseModel):
    items: list[SecurityEventOut]
    next_cursor: str | None = None
