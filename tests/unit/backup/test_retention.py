"""Grandfather-father-son retention."""

from datetime import UTC, datetime, timedelta

from bastion.backup.retention import RetentionPolicy, backups_to_keep


def _daily(days, start=datetime(2026, 11, 22, 3, 0, tzinfo=UTC)):
    return {f"b{n}": start - timedelta(days=n) for n in range(days)}


def test_default_policy_keeps_7_daily_4_weekly_12_monthly():
    backups = _daily(400)
    kept = backups_to_keep(backups, RetentionPolicy())
    days = sorted((backups["b0"] - backups[b]).days for b in kept)
    assert days[:7] == list(range(7))
    # Weekly: the newest of each of the last 4 ISO weeks; monthly: of the last 12 months.
    assert len(kept) <= 7 + 4 + 12
    assert max(days) < 366
    months = {(backups[b].year, backups[b].month) for b in kept}
    assert len(months) == 12


def test_several_backups_a_day_keep_the_newest_of_each_day():
    start = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    backups = {f"b{h}": start - timedelta(hours=h) for h in range(48)}
    kept = backups_to_keep(backups, RetentionPolicy(daily=2, weekly=0, monthly=0))
    assert kept == {"b0", "b24"}  # b24: 23:00 the day before


def test_the_newest_backup_is_always_kept():
    backups = _daily(3)
    assert "b0" in backups_to_keep(backups, RetentionPolicy(daily=1, weekly=0, monthly=0))


def test_nothing_to_keep_when_there_is_nothing():
    assert backups_to_keep({}, RetentionPolicy()) == set()
