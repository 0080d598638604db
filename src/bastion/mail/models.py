"""The durable outbox table (migration 0013)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base

LEASE_HOLDER_CHARS = 64
ERROR_CHARS = 200


class QueuedMail(Base):
    """One message waiting for delivery.

    ``sealed`` is the whole message (recipient, subject, body: reset links are credentials)
    under the system data key, bound to this row id. A worker *leases* a row before sending it
    (``lease_holder`` until ``lease_expires_at``), so two processes never send it at once; a
    delivered row is deleted, a failed attempt moves ``next_attempt_at`` back, and after the
    last attempt ``failed_at`` is set and the row stays for the operator to see.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_next_attempt_at", "failed_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(LEASE_HOLDER_CHARS))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The kind of failure only (an exception class name): never an address or a server reply.
    last_error: Mapped[str | None] = mapped_column(String(ERROR_CHARS))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
