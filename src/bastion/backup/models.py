"""The backup domain's one table: restore-drill results (P20 reads the last one)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base


class BackupDrill(Base):
    """One restore drill: which backup, the recovery point it proved and how long it took."""

    __tablename__ = "backup_drills"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    backup_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    # The instant the drilled backup captured: what a real restore would get back.
    recovery_point: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    restored_bytes: Mapped[int] = mapped_column(BigInteger)
    tables: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(BigInteger)
