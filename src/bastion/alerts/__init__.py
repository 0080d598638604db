"""Security events and their alerting (issue 8): the store, routing by severity, and sinks."""

from bastion.alerts.types import SecurityEvent, SecurityEvents, Severity, StoredSecurityEvent

__all__ = ["SecurityEvent", "SecurityEvents", "Severity", "StoredSecurityEvent"]
