"""Errors of the alerts package.

::

    AlertsError
    ├── InvalidSecurityEvent (InvalidInput)        an event a caller tried to record is malformed
    ├── InvalidSecurityEventQuery (InvalidInput)   a bad filter or a cursor this API did not issue
    └── AlertDeliveryFailed                        a sink refused or could not take a delivery
                                                   (internal: retried by the worker, never raised
                                                   to an HTTP caller)
"""

from __future__ import annotations

from bastion.errors import AppError, InvalidInput


class AlertsError(AppError):
    code = "alerts.error"


class InvalidSecurityEvent(AlertsError, InvalidInput):
    """Raised inside the caller's transaction, so the action that wanted to record it fails
    too (fail closed, like an audit append)."""

    code = "alerts.invalid_event"
    public_message = "The security event is malformed."


class InvalidSecurityEventQuery(AlertsError, InvalidInput):
    code = "alerts.invalid_query"
    public_message = "The security-event query is invalid (filter or cursor)."


class AlertDeliveryFailed(AlertsError):
    code = "alerts.delivery_failed"
    public_message = "An alert could not be delivered; it will be retried."
