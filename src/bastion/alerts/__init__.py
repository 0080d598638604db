"""Security events and their alerting (issue 8): the store, routing by severity, and sinks.

Owns the ``security_events`` and ``alert_deliveries`` tables. Other packages only call
``SecurityEvents.record(session, event)`` inside their own transaction; this package then
delivers the event to the sinks the settings route it to (e-mail, signed webhooks, JSON lines to
stdout or syslog) from a worker, with retries. It never commits a caller's transaction, never
sends from the request path, and never accepts secrets in an event's details.
"""

from bastion.alerts.errors import (
    AlertDeliveryFailed,
    AlertsError,
    InvalidSecurityEvent,
    InvalidSecurityEventQuery,
)
from bastion.alerts.service import SqlSecurityEvents
from bastion.alerts.types import SecurityEvent, SecurityEvents, Severity, StoredSecurityEvent

__all__ = [
    "AlertDeliveryFailed",
    "AlertsError",
    "InvalidSecurityEvent",
    "InvalidSecurityEventQuery",
    "SecurityEvent",
    "SecurityEvents",
    "Severity",
    "SqlSecurityEvents",
    "StoredSecurityEvent",
]
