"""The records.purge job: soft-deleted records whose grace period ended are removed for good.

Runs across tenants (a job, not a request), in batches of its own short transactions; each
batch's removals are audited on each tenant's chain in the same transaction. Two instances
running it at once is harmless: the DELETE re-checks the deletion time and counts only what it
removed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Final

from bastion.audit import AuditEvent, AuditLog
from bastion.db import UnitOfWork
from bastion.kernel.clock import Clock
from bastion.records import repository
from bastion.records.types import RecordsAction

PURGE_BATCH: Final = 500


def purge_expired(*, uow: UnitOfWork, audit_log: AuditLog, clock: Clock, grace: timedelta) -> int:
    """Remove every record deleted more than ``grace`` ago; how many were removed."""
    before = clock.now() - grace
    total = 0
    while True:
        with uow.begin() as session:
            expired = repository.expired_deletions(session, before=before, limit=PURGE_BATCH)
            if not expired:
                return total
            by_tenant: dict[str, list[str]] = defaultdict(list)
            for row in expired:
                by_tenant[row.tenant_id].append(row.id)
            for tenant_id, record_ids in by_tenant.items():
                removed = repository.purge(session, tenant_id, record_ids, before=before)
                total += removed
                if removed:
                    audit_log.append(
                        session,
                        AuditEvent(
                            action=RecordsAction.RECORDS_PURGED.value,
                            tenant_id=tenant_id,
                            details={"count": removed, "grace_seconds": int(grace.total_seconds())},
                        ),
                    )
        if len(expired) < PURGE_BATCH:
            return total
