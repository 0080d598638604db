"""The daily backup job (P18), for a scheduler, cron or a Kubernetes CronJob."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.backup.errors import BackupError
from bastion.backup.service import BackupService
from bastion.backup.types import CreateReport, Freshness, PruneReport


@dataclass(frozen=True, slots=True)
class DailyReport:
    created: CreateReport | None
    error: str | None
    pruned: PruneReport | None
    freshness: Freshness


def run_daily_backup(service: BackupService) -> DailyReport:
    """Back up, prune by retention, then check the newest good backup's age.

    There is no in-process scheduler yet: run ``bastion backup daily`` from cron (or call this)
    at ``backup.daily_at``. A failed backup skips pruning (so a run of failures never thins out
    the good backups) and still raises the staleness alert. Safe to run twice at once: each
    backup has its own id and key, and pruning always keeps the newest good backup.
    """
    created: CreateReport | None = None
    error: str | None = None
    pruned: PruneReport | None = None
    try:
        created = service.create()
        pruned = service.prune()
    except BackupError as exc:
        error = exc.detail  # already logged as backup.failed and audited by create()
    return DailyReport(created=created, error=error, pruned=pruned, freshness=service.freshness())
