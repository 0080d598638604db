"""Which backups to keep: grandfather-father-son by day, ISO week and month. Pure: no I/O.

For each period kind, the newest backup of each of the last N periods that have a backup is kept
(as ``restic forget --keep-daily/--keep-weekly/--keep-monthly`` does); the newest backup overall is
always kept, so pruning can never leave an installation with none.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _week(moment: datetime) -> Hashable:
    year, week, _ = moment.isocalendar()
    return (year, week)


def _month(moment: datetime) -> Hashable:
    return (moment.year, moment.month)


def backups_to_keep(created: Mapping[str, datetime], policy: RetentionPolicy) -> set[str]:
    """The ids (keys of ``created``, valued by creation time) that ``policy`` keeps."""
    newest_first = sorted(created.items(), key=lambda item: item[1], reverse=True)
    keep = {newest_first[0][0]} if newest_first else set()
    periods: tuple[tuple[int, Callable[[datetime], Hashable]], ...] = (
        (policy.daily, _day),
        (policy.weekly, _week),
        (policy.monthly, _month),
    )
    for count, period_of in periods:
        seen: set[Hashable] = set()
        for backup_id, moment in newest_first:
            period = period_of(moment.astimezone(UTC))
            if period in seen:
                continue
            if len(seen) >= count:
                break
            seen.add(period)
            keep.add(backup_id)
    return keep
