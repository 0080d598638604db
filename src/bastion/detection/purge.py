"""Housekeeping: detection rows that no longer decide anything are deleted (P22, keep data only
as long as necessary). Run by the ``detection.purge`` job; harmless when two instances race."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from sqlalchemy import and_, delete, or_

from bastion.audit import AuditEvent, AuditLog
from bastion.db import UnitOfWork
from bastion.detection.models import BlockedSource, DetectionLink, KnownDevice, LoginLockout
from bastion.kernel.clock import Clock

# Ended locks, blocks and spent links stay this long for an operator's questions, then go.
KEEP_ENDED: Final = timedelta(days=30)
# A device not seen for this long is forgotten: its next sign-in is "new" again.
FORGET_DEVICE: Final = timedelta(days=365)


def purge_expired(*, uow: UnitOfWork, audit_log: AuditLog, clock: Clock) -> int:
    """Delete ended locks and blocks, spent or expired links and long-unseen devices; the count
    deleted (audited on the system chain when not zero)."""
    now = clock.now()
    ended = now - KEEP_ENDED
    statements = {
        "links": delete(DetectionLink).where(
            or_(DetectionLink.expires_at < ended, DetectionLink.used_at < ended)
        ),
        "blocks": delete(BlockedSource).where(BlockedSource.blocked_until < ended),
        # A "reported" lock (no end) stays until a new lock replaces it: it is what keeps sign-in
        # shut until the password is reset.
        "locks": delete(LoginLockout).where(
            or_(
                LoginLockout.released_at < ended,
                and_(LoginLockout.locked_until.is_not(None), LoginLockout.locked_until < ended),
            )
        ),
        "devices": delete(KnownDevice).where(KnownDevice.last_seen_at < now - FORGET_DEVICE),
    }
    with uow.begin() as session:
        counts = {
            name: int(getattr(session.execute(statement), "rowcount", 0) or 0)
            for name, statement in statements.items()
        }
        total = sum(counts.values())
        if total:
            audit_log.append(session, AuditEvent(action="detection.purged", details=counts))
    return total
