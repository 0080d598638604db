"""The security-event store and its delivery outbox (migration 0010).

``security_events`` is append-only from Bastion's side: rows are inserted by ``record`` and never
updated. ``alert_deliveries`` is the outbox: one row per (event, sink) written in the same
transaction as the event, then worked off by the delivery worker.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base

STATUS_PENDING = "pending"
STATUS_SENT = "sent"
STATUS_FAILED = "failed"  # gave up after the last attempt; the event itself stays stored
DELIVERY_STATUSES = (STATUS_PENDING, STATUS_SENT, STATUS_FAILED)


class SecurityEventRow(Base):
    __tablename__ = "security_events"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 10 AND 50", name="severity"),
        Index("ix_security_events_time", "occurred_at", "id"),
        Index("ix_security_events_tenant_time", "tenant_id", "occurred_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(255))
    # Not a foreign key: an erased tenant's security history stays for the operators.
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, no secrets (checked on record)


class AlertDeliveryRow(Base):
    __tablename__ = "alert_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in DELIVERY_STATUSES) + ")",
            name="status",
        ),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("security_events.id", ondelete="CASCADE"), index=True
    )
    sink: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A worker that took the row owns it until then; a crashed worker's claim simply expires.
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(300))
