"""The vocabulary of security events, shared by whatever detects them and whatever delivers them.

Detection (lockouts, blocked sources, new-device logins), the audit verifier and key management
*record* security events; the alerts package stores them and routes them to sinks by severity.
Recording happens inside the caller's transaction, like an audit append: an event is never
delivered for a change that rolled back, and never lost for one that committed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session


class Severity(enum.IntEnum):
    """Ordered, so routing can say "high and above"."""

    INFO = 10
    LOW = 20
    MEDIUM = 30
    HIGH = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One thing a defender should know about.

    ``type`` is dotted like audit actions (``login.locked``, ``source.blocked``,
    ``login.new_device``, ``audit.chain_damaged``). ``subject`` is who or what it concerns (a user
    id, an IP address, a chain); ``tenant_id`` is set when a tenant's owners may see it.
    ``details`` must hold no secret (no password, token or code).
    """

    type: str
    severity: Severity
    subject: str
    source: str | None = None
    tenant_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredSecurityEvent:
    id: str
    occurred_at: datetime
    event: SecurityEvent


class SecurityEvents(Protocol):
    """Records security events in the caller's transaction and queues their alert deliveries."""

    def record(self, session: Session, event: SecurityEvent) -> StoredSecurityEvent: ...
