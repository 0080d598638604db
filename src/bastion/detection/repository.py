"""Rows of detection: locks, blocks and known devices. Placing a lock or a block is one atomic
upsert (INSERT ... ON CONFLICT DO UPDATE WHERE the old one is over), so concurrent requests in
several processes place it once: exactly one of them alerts and mails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Table,
    and_,
    bindparam,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bastion.detection.models import BlockedSource, KnownDevice, LoginLockout
from bastion.kernel.clock import as_utc

REASON_FAILURES = "failures"
REASON_REPORTED = "reported"

_LOCKS = cast(Table, LoginLockout.__table__)
_BLOCKS = cast(Table, BlockedSource.__table__)
_DEVICES = cast(Table, KnownDevice.__table__)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def active_lock(
    session: Session, user_id: str, *, now: datetime, password_changed_at: datetime | None
) -> LoginLockout | None:
    """The lock in force on ``user_id`` now, if any. A "reported" lock (no end time) holds until
    the password changes after it was placed."""
    row = session.get(LoginLockout, user_id, populate_existing=True)
    if row is None or not _lock_in_force(
        locked_at=row.locked_at,
        locked_until=row.locked_until,
        released_at=row.released_at,
        now=now,
        password_changed_at=password_changed_at,
    ):
        return None
    return row


def _lock_in_force(
    *,
    locked_at: datetime,
    locked_until: datetime | None,
    released_at: datetime | None,
    now: datetime,
    password_changed_at: datetime | None,
) -> bool:
    if released_at is not None:
        return False
    if locked_until is None:
        return password_changed_at is None or password_changed_at <= as_utc(locked_at)
    return as_utc(locked_until) > now


@dataclass(frozen=True, slots=True)
class Standing:
    """What a login attempt meets before its password is checked."""

    # The end of the source's block, when one is in force.
    blocked_until: datetime | None
    # The account is locked (``active_lock`` would return a row).
    locked: bool
    # When the account last signed in from the attempt's device (None: never, or no account).
    device_last_seen: datetime | None


def _by_key(table: Table, column: str, key: str) -> ScalarSelect[Any]:
    return (
        select(table.c[column])
        .where(table.primary_key.columns[0] == bindparam(key))
        .scalar_subquery()
    )


_DEVICE_SEEN: Final = select(_DEVICES.c.last_seen_at).where(
    _DEVICES.c.user_id == bindparam("user_id"),
    _DEVICES.c.fingerprint == bindparam("fingerprint"),
)

# Every login asks these three questions: one statement of primary-key reads (Core, built once)
# instead of three ORM loads. A missing source or account binds NULL, which matches no row.
_STANDING: Final = select(
    _by_key(_BLOCKS, "blocked_until", "source").label("blocked_until"),
    _by_key(_LOCKS, "locked_at", "user_id").label("locked_at"),
    _by_key(_LOCKS, "locked_until", "user_id").label("locked_until"),
    _by_key(_LOCKS, "released_at", "user_id").label("released_at"),
    _DEVICE_SEEN.scalar_subquery().label("device_last_seen"),
)


def standing(
    session: Session,
    *,
    source: str | None,
    user_id: str | None,
    fingerprint: bytes,
    now: datetime,
    password_changed_at: datetime | None,
) -> Standing:
    """The block in force on ``source``, whether ``user_id`` is locked (as ``active_lock``
    decides) and when it last signed in from ``fingerprint`` (as ``device_last_seen``), in one
    round trip."""
    row = (
        session.connection()
        .execute(_STANDING, {"source": source, "user_id": user_id, "fingerprint": fingerprint})
        .one()
    )
    blocked = row.blocked_until is not None and as_utc(row.blocked_until) > now
    locked = row.locked_at is not None and _lock_in_force(
        locked_at=row.locked_at,
        locked_until=row.locked_until,
        released_at=row.released_at,
        now=now,
        password_changed_at=password_changed_at,
    )
    return Standing(
        blocked_until=as_utc(row.blocked_until) if blocked else None,
        locked=locked,
        device_last_seen=None if row.device_last_seen is None else as_utc(row.device_last_seen),
    )


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


_TOUCH_DEVICE: Final = (
    update(_DEVICES)
    .where(
        _DEVICES.c.user_id == bindparam("device_user"),
        _DEVICES.c.fingerprint == bindparam("device_fingerprint"),
    )
    .values(last_seen_at=bindparam("now"))
)


def device_last_seen(session: Session, user_id: str, fingerprint: bytes) -> datetime | None:
    """When ``user_id`` last signed in from ``fingerprint`` (None: never), in one primary-key
    read (Core: every login from a known device asks)."""
    seen = (
        session.connection()
        .execute(_DEVICE_SEEN, {"user_id": user_id, "fingerprint": fingerprint})
        .scalar_one_or_none()
    )
    return None if seen is None else as_utc(seen)


def touch_device(
    session: Session,
    user_id: str,
    fingerprint: bytes,
    *,
    last_seen_at: datetime,
    now: datetime,
    every: timedelta,
) -> bool:
    """Move a known device's ``last_seen_at`` to ``now`` if it is older than ``every``; True if
    it moved. It only decides when an unused device is forgotten (after a year, ``purge``), so a
    day's precision is plenty, and a sign-in from a known device then writes nothing here (no
    write lock taken for it)."""
    if last_seen_at > now - every:
        return False
    session.connection().execute(
        _TOUCH_DEVICE, {"device_user": user_id, "device_fingerprint": fingerprint, "now": now}
    )
    return True


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
