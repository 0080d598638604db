"""The alarm for a stored record that fails its integrity check.

A ciphertext that does not open for its own tenant, collection and record was tampered with or
moved in the database: a defender must hear of it, not only the caller who got the 500. The
event is recorded in a short transaction of its own, because the request's transaction rolls
back with the error. Recording it never masks the integrity error itself: if it fails (the
database is away; on SQLite, a write lock the request holds outlasts the busy timeout), that is
logged and the error still goes to the caller.
"""

from __future__ import annotations

from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bastion.alerts.types import SecurityEvent, SecurityEvents, Severity
from bastion.db import UnitOfWork
from bastion.errors import AppError
from bastion.records.errors import RecordIntegrityError

log = structlog.get_logger("bastion.records")
EVENT_TYPE: Final = "records.integrity_failed"


class TamperAlarm:
    """Records a HIGH security event, visible to the tenant, per record that fails to open."""

    def __init__(self, *, uow: UnitOfWork, events: SecurityEvents) -> None:
        self._uow = uow
        self._events = events

    def __call__(self, tenant_id: str, error: RecordIntegrityError) -> None:
        collection = str(error.details.get("collection"))
        record_id = str(error.details.get("record_id"))
        event = SecurityEvent(
            type=EVENT_TYPE,
            severity=Severity.HIGH,
            subject=f"{collection}/{record_id}",
            source="records",
            tenant_id=tenant_id,
            details={"collection": collection, "record_id": record_id},
        )
        try:
            with self._uow.begin() as session:
                self._events.record(session, event)
        except (SQLAlchemyError, AppError):
            log.exception(
                "records.integrity_alarm_failed", tenant_id=tenant_id, subject=event.subject
            )
