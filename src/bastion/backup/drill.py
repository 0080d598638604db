"""Restore drills (P20): prove the newest backup restores, and how long it takes.

A drill restores the newest good backup to a throw-away place (a temporary data directory for
SQLite, ``backup.drill_database_url`` for PostgreSQL), runs every check a real restore runs, and
records the outcome, the recovery point (when the backup was taken) and the duration in
``backup_drills``. A failed drill is recorded too, and logged as the ``backup.drill_failed`` alert.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import structlog

from bastion.backup.service import DRILL_FAILED_EVENT, BackupService
from bastion.backup.types import DrillResult, Progress
from bastion.errors import AppError

log = structlog.get_logger("bastion.backup")


def run_drill(
    service: BackupService,
    *,
    drill_database_url: str | None,
    progress: Progress | None = None,
) -> DrillResult:
    """Drill the newest backup; never raises for a failed drill (the result says so)."""
    drill_id = service.new_drill_id()
    started_at = service.clock.now()
    started = time.monotonic()
    newest = None
    scratch: Path | None = None
    try:
        newest = service.newest()
        if newest is None:
            raise _NoBackup("there is no good backup to drill")
        if newest.backend == "sqlite":
            scratch = Path(tempfile.mkdtemp(prefix="drill-", dir=service.staging_dir()))
            report = service.restore(newest.backup_id, data_dir=scratch, progress=progress)
        else:
            if drill_database_url is None:
                raise _NoBackup(
                    "PostgreSQL drills restore into backup.drill_database_url, which is not set"
                )
            report = service.restore(
                newest.backup_id,
                database_url=drill_database_url,
                force=True,
                progress=progress,
            )
        result = DrillResult(
            drill_id=drill_id,
            backup_id=newest.backup_id,
            started_at=started_at,
            duration_seconds=round(time.monotonic() - started, 3),
            recovery_point=newest.created_at,
            ok=True,
            detail=None,
            restored_bytes=report.restored_bytes,
            tables=len(report.tables),
            rows=report.rows,
        )
    except AppError as exc:
        result = DrillResult(
            drill_id=drill_id,
            backup_id=None if newest is None else newest.backup_id,
            started_at=started_at,
            duration_seconds=round(time.monotonic() - started, 3),
            recovery_point=None if newest is None else newest.created_at,
            ok=False,
            detail=exc.detail,
            restored_bytes=0,
            tables=0,
            rows=0,
        )
        log.error(
            DRILL_FAILED_EVENT,
            drill_id=drill_id,
            backup_id=result.backup_id,
            error=exc.detail,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    service.record_drill(result)
    return result


class _NoBackup(AppError):
    code = "backup.drill_impossible"
    public_message = "The restore drill could not run."
