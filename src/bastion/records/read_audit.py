"""Recording reads (``record.read``, ``records.listed``) durably, after the read itself.

Interim: the group-commit ``ReadAuditBatcher`` (``bastion.audit.batcher``, exposed as
``container.read_audit``) is being built by another change. Until it lands, each read event is
appended here in a short transaction of its own, which costs one durable commit per read. The
contract is the batcher's: return only once the event is committed, raise AuditWriteFailed
(503) otherwise, so a read whose audit entry could not be written is never answered.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from bastion.audit import AuditEvent, AuditLog, AuditWriteFailed
from bastion.db import UnitOfWork


class DirectReadAudit:
    """Same call shape as ``ReadAuditBatcher.record``; one transaction per event."""

    def __init__(self, *, uow: UnitOfWork, audit_log: AuditLog) -> None:
        self._uow = uow
        self._audit_log = audit_log

    def record(self, event: AuditEvent) -> None:
        try:
            with self._uow.begin() as session:
                self._audit_log.append(session, event)
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(
                "The read could not be recorded in the audit log, so it is not answered."
            ) from exc
