"""Injected time, so that tests can fix the clock (the ``*_at`` convention)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware datetime: SQLite hands back naive ones; Bastion stores only UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
