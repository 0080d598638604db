"""Recording security events: validate, store, and queue one delivery per matching sink.

``SqlSecurityEvents.record`` is the outbox half of alerting. It writes the event and its pending
deliveries with the caller's session, so they commit or roll back with the action that caused
them, and it never talks to a sink: a slow or dead receiver cannot hold up a request. The
delivery worker (``bastion.alerts.delivery``) does the sending afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import exists, insert, select
from sqlalchemy.orm import Session

from bastion.alerts.errors import InvalidSecurityEvent
from bastion.alerts.models import STATUS_PENDING, AlertDeliveryRow, SecurityEventRow
from bastion.alerts.types import SecurityEvent, Severity, StoredSecurityEvent
from bastion.kernel.clock import Clock
from bastion.kernel.ids import new_id
from bastion.kernel.redact import is_secret_key
from bastion.settings import AlertSinkSettings, AlertsSettings

EVENT_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
MAX_TYPE_CHARS: Final = 64
MAX_TEXT_CHARS: Final = 255
MAX_TENANT_CHARS: Final = 36
MAX_DETAILS_BYTES: Final = 4096
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def severity_named(name: str) -> Severity:
    """``"high"`` -> Severity.HIGH (names as in settings and the API)."""
    return Severity[name.upper()]


def sinks_for(sinks: Sequence[AlertSinkSettings], severity: Severity) -> list[AlertSinkSettings]:
    """The sinks an event of ``severity`` is routed to: each one whose minimum it reaches."""
    return [sink for sink in sinks if severity >= severity_named(sink.min_severity)]


def encode_details(details: Mapping[str, Any]) -> str:
    """Canonical JSON for the details; InvalidSecurityEvent if not JSON, too big or secret."""
    _refuse_secrets(details)
    try:
        encoded = json.dumps(details, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSecurityEvent("security event details must be plain JSON") from exc
    if len(encoded.encode("utf-8")) > MAX_DETAILS_BYTES:
        raise InvalidSecurityEvent(f"security event details exceed {MAX_DETAILS_BYTES} bytes")
    return encoded


def _refuse_secrets(details: Mapping[str, Any]) -> None:
    for name, value in details.items():
        if not isinstance(name, str):
            raise InvalidSecurityEvent("security event detail names must be strings")
        if is_secret_key(name):
            # Alerts leave the system (mail, webhooks, syslog): a secret here would be a leak.
            raise InvalidSecurityEvent(f"security event details may not hold secrets ({name!r})")
        if isinstance(value, Mapping):
            _refuse_secrets(value)


def validate(event: SecurityEvent) -> None:
    """Raise InvalidSecurityEvent unless ``event`` can be stored and sent as it is."""
    if not isinstance(event.severity, Severity):
        raise InvalidSecurityEvent("security event severity must be a Severity")
    if len(event.type) > MAX_TYPE_CHARS or not EVENT_TYPE.fullmatch(event.type):
        raise InvalidSecurityEvent("security event type must be dotted lower case (login.locked)")
    for name, value, limit in (
        ("subject", event.subject, MAX_TEXT_CHARS),
        ("source", event.source, MAX_TEXT_CHARS),
        ("tenant_id", event.tenant_id, MAX_TENANT_CHARS),
    ):
        if value is None:
            continue
        # Control characters would forge lines in syslog and JSON-lines sinks (ASVS V16.4.1).
        if not value or len(value) > limit or _CONTROL.search(value):
            raise InvalidSecurityEvent(f"security event {name} must be 1-{limit} plain characters")


class SqlSecurityEvents:
    """The ``SecurityEvents`` implementation over the ``security_events`` table.

    ``record`` raises InvalidSecurityEvent for a malformed event (the caller's transaction then
    fails, as with an audit append). Thread-safe: holds only settings and a clock.
    """

    def __init__(self, *, settings: AlertsSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    def record(self, session: Session, event: SecurityEvent) -> StoredSecurityEvent:
        return self.record_at(session, event, now=self._clock.now())

    def record_once(
        self, session: Session, event: SecurityEvent, *, within: timedelta
    ) -> StoredSecurityEvent | None:
        """Record ``event`` unless one of the same type, tenant, subject and source was
        recorded in the last ``within`` (None then). For signals that repeat with every request
        (a refused network, say): one alert per occurrence would bury the owners, while one per
        window still says that it goes on. Decided by the database, so every process agrees."""
        now = self._clock.now()
        table = SecurityEventRow
        same = exists().where(
            table.type == event.type,
            table.tenant_id.is_not_distinct_from(event.tenant_id),
            table.subject == event.subject,
            table.source.is_not_distinct_from(event.source),
            table.occurred_at > now - within,
        )
        if session.scalar(select(same)):
            return None
        return self.record_at(session, event, now=now)

    def record_at(
        self, session: Session, event: SecurityEvent, *, now: datetime
    ) -> StoredSecurityEvent:
        validate(event)
        details = encode_details(event.details)
        event_id = new_id()
        session.execute(
            insert(SecurityEventRow),
            [
                {
                    "id": event_id,
                    "occurred_at": now,
                    "type": event.type,
                    "severity": int(event.severity),
                    "subject": event.subject,
                    "source": event.source,
                    "tenant_id": event.tenant_id,
                    "details": details,
                }
            ],
        )
        deliveries = [
            {
                "id": new_id(),
                "event_id": event_id,
                "sink": sink.name,
                "status": STATUS_PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for sink in sinks_for(self._settings.sinks, event.severity)
        ]
        if deliveries:
            session.execute(insert(AlertDeliveryRow), deliveries)
        return StoredSecurityEvent(id=event_id, occurred_at=now, event=event)
