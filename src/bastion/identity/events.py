"""What the identity domain tells the audit log, and the seam through which it does.

Every state change (and every refused login) is recorded inside the caller's transaction through
an ``AuditTrail``; if recording fails, the action fails (DESIGN invariant 2). Details never hold a
password, token or e-mail address.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from sqlalchemy.orm import Session

from bastion.audit import AuditEvent, AuditLog, Outcome
from bastion.identity.types import ClientInfo, IdentityAction

DetailValue = str | int | bool | None


class EventOutcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    """One identity action to record; ``actor_user_id`` is the real id (the log pseudonymises)."""

    action: IdentityAction
    client: ClientInfo
    actor_user_id: str | None = None
    target: str | None = None
    outcome: EventOutcome = EventOutcome.SUCCESS
    details: Mapping[str, DetailValue] = field(default_factory=dict)


class AuditTrail(Protocol):
    """Records an identity event in ``session``'s transaction; raises if it cannot."""

    def record(self, session: Session, event: IdentityEvent) -> None: ...


class AuditLogTrail:
    """The real trail: ``bastion.audit.AuditLog.append`` on the system chain (users are not
    tenant-owned), in the caller's transaction. The audit log pseudonymises the actor."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def record(self, session: Session, event: IdentityEvent) -> None:
        self._log.append(
            session,
            AuditEvent(
                action=str(event.action),
                tenant_id=None,
                actor_user_id=event.actor_user_id,
                target=event.target,
                outcome=Outcome(str(event.outcome)),
                source_ip=_ip_or_none(event.client.ip),
                user_agent=event.client.user_agent,
                request_id=event.client.request_id,
                details=dict(event.details),
            ),
        )


def _ip_or_none(value: str | None) -> str | None:
    # The edge sets an IP address; anything else (a test client's "testclient") is not one, and
    # the audit log rightly refuses non-addresses rather than losing the event over it.
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


class LogOnlyAuditTrail:
    """A structured log line per event, for tools that run without a keyring (none in
    production: ``bootstrap`` wires ``AuditLogTrail``)."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("bastion.identity.audit")

    def record(self, session: Session, event: IdentityEvent) -> None:  # noqa: ARG002 - see class doc
        self._log.info(
            "identity.event",
            action=str(event.action),
            outcome=str(event.outcome),
            actor=event.actor_user_id,
            target=event.target,
            client_ip=event.client.ip,
            request_id=event.client.request_id,
            **{f"detail_{k}": v for k, v in event.details.items()},
        )


class RecordingAuditTrail:
    """Keeps events in memory (tests and contract checks)."""

    def __init__(self) -> None:
        self.events: list[IdentityEvent] = []

    def record(self, session: Session, event: IdentityEvent) -> None:  # noqa: ARG002 - in memory
        self.events.append(event)

    def actions(self) -> list[str]:
        return [str(e.action) for e in self.events]
