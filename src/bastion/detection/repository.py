"""Rows of detection: locks, blocks and known devices. Placing a lock or a block is one atomic
upsert (INSERT ... ON CONFLICT DO UPDATE WHERE the old one is over), so concurrent requests in
several processes place it once: exactly one of them alerts and mails."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bastion.detection.models import BlockedSource, KnownDevice, LoginLockout
from bastion.kernel.clock import as_utc

REASON_FAILURES = "failures"
REASON_REPORTED = "reported"


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def active_lock(
    session: Session, user_id: str, *, now: datetime, password_changed_at: datetime | None
) -> LoginLockout | None:
    """The lock in force on ``user_id`` now, if any. A "reported" lock (no end time) holds until
    the password changes after it was placed."""
    row = session.get(LoginLockout, user_id, populate_existing=True)
    if row is None or row.released_at is not None:
        return None
    if row.locked_until is None:
        changed = password_changed_at is not None and password_changed_at > as_utc(row.locked_at)
        return None if changed else row
    return row if as_utc(row.locked_until) > now else None


def lock(
    session: Session,
    user_id: str,
    *,
    reason: str,
    failures: int,
    now: datetime,
    until: datetime | None,
) -> bool:
    """Place a lock; False when one was already in force (a failures lock never shortens or
    replaces a lock in force; a reported lock always replaces it)."""
    values = {
        "user_id": user_id,
        "reason": reason,
        "failures": failures,
        "locked_at": now,
        "locked_until": until,
        "released_at": None,
    }
    over: ColumnElement[bool] | None = None
    if reason != REASON_REPORTED:
        over = or_(
            LoginLockout.released_at.is_not(None),
            and_(LoginLockout.locked_until.is_not(None), LoginLockout.locked_until <= now),
        )
    statement = (
        _insert(session, LoginLockout)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[LoginLockout.user_id],
            set_={k: v for k, v in values.items() if k != "user_id"},
            where=over,
        )
    )
    result = session.execute(statement)
    session.expire_all()
    return bool(getattr(result, "rowcount", 0))


def release(session: Session, user_id: str, *, now: datetime) -> bool:
    """End the lock of ``user_id`` early (the unlock link); False if there was none."""
    result = session.execute(
        update(LoginLockout)
        .where(LoginLockout.user_id == user_id, LoginLockout.released_at.is_(None))
        .values(released_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def active_block(session: Session, source: str, *, now: datetime) -> BlockedSource | None:
    row = session.get(BlockedSource, source, populate_existing=True)
    if row is None or as_utc(row.blocked_until) <= now:
        return None
    return row


def block(session: Session, source: str, *, reason: str, now: datetime, until: datetime) -> bool:
    """Block ``source`` until ``until``; False when a block was already in force."""
    values = {"source": source, "reason": reason, "blocked_at": now, "blocked_until": until}
    statement = (
        _insert(session, BlockedSource)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[BlockedSource.source],
            set_={k: v for k, v in values.items() if k != "source"},
            where=BlockedSource.blocked_until <= now,
        )
    )
    result = session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


def active_blocks(session: Session, *, now: datetime) -> list[BlockedSource]:
    return list(
        session.scalars(
            select(BlockedSource)
            .where(BlockedSource.blocked_until > now)
            .order_by(BlockedSource.blocked_at)
        )
    )


def unblock(session: Session, source: str, *, now: datetime) -> bool:
    """End the block of ``source`` now; False if none was in force."""
    result = session.execute(
        update(BlockedSource)
        .where(BlockedSource.source == source, BlockedSource.blocked_until > now)
        .values(blocked_until=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def has_devices(session: Session, user_id: str) -> bool:
    return bool(session.scalar(select(exists().where(KnownDevice.user_id == user_id))))


def known_device(session: Session, user_id: str, fingerprint: bytes) -> KnownDevice | None:
    return session.get(KnownDevice, (user_id, fingerprint))


def touch_device(device: KnownDevice, *, now: datetime, every: timedelta) -> None:
    """Move ``last_seen_at`` to ``now`` if it is older than ``every``. It only decides when an
    unused device is forgotten (after a year, ``purge``), so a day's precision is plenty, and a
    sign-in from a known device then writes nothing here (no write lock taken for it)."""
    if as_utc(device.last_seen_at) <= now - every:
        device.last_seen_at = now


def remember_device(session: Session, user_id: str, fingerprint: bytes, *, now: datetime) -> bool:
    """Record a sign-in from ``fingerprint``; True if it was not known before (exactly one of
    two concurrent first sign-ins from it gets True)."""
    known = session.get(KnownDevice, (user_id, fingerprint))
    if known is not None:
        known.last_seen_at = now
        session.flush()
        return False
    statement = (
        _insert(session, KnownDevice)
        .values(user_id=user_id, fingerprint=fingerprint, first_seen_at=now, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=[KnownDevice.user_id, KnownDevice.fingerprint])
    )
    result = session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
