"""Queries on ``backup_drills``; the service owns the transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.backup.models import BackupDrill
from bastion.backup.types import DrillResult


def add_drill(session: Session, result: DrillResult) -> None:
    session.add(
        BackupDrill(
            id=result.drill_id,
            backup_id=result.backup_id,
            started_at=result.started_at,
            finished_at=result.started_at + timedelta(seconds=result.duration_seconds),
            duration_ms=round(result.duration_seconds * 1000),
            recovery_point=result.recovery_point,
            outcome="success" if result.ok else "failure",
            detail=result.detail,
            restored_bytes=result.restored_bytes,
            tables=result.tables,
            rows=result.rows,
        )
    )


def latest_drills(session: Session, *, limit: int) -> list[DrillResult]:
    rows = session.scalars(
        select(BackupDrill).order_by(BackupDrill.started_at.desc()).limit(limit)
    ).all()
    return [
        DrillResult(
            drill_id=row.id,
            backup_id=row.backup_id,
            started_at=_utc(row.started_at),
            duration_seconds=row.duration_ms / 1000,
            recovery_point=None if row.recovery_point is None else _utc(row.recovery_point),
            ok=row.outcome == "success",
            detail=row.detail,
            restored_bytes=row.restored_bytes,
            tables=row.tables,
            rows=row.rows,
        )
        for row in rows
    ]


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for DateTime(timezone=True); Bastion stores UTC only.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
