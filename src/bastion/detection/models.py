"""Detection tables (migration 0011). Rows stay inside the package.

Nothing here holds raw history: a device is a keyed MAC of (user-agent family, network), a link
token is its SHA-256, and a blocked source is one address for a bounded time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base

SOURCE_CHARS = 64


class LoginLockout(Base):
    """The lock of one account: until ``locked_until``, or (NULL) until the password changes."""

    __tablename__ = "login_lockouts"

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer)
    locked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BlockedSource(Base):
    """A client address refused at login until ``blocked_until``."""

    __tablename__ = "blocked_sources"

    source: Mapped[str] = mapped_column(String(SOURCE_CHARS), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    blocked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KnownDevice(Base):
    """A (user-agent family, network) a user signed in from, as a keyed MAC only."""

    __tablename__ = "known_devices"

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DetectionLink(Base):
    """A single-use e-mailed token: unlock the account, or report "this wasn't me"."""

    __tablename__ = "detection_links"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
