"""Restore drills, retention, the staleness alert and the daily job."""

import os
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from bastion.backup import run_daily_backup, run_drill
from bastion.bootstrap import build
from tests.support.backup import flip_byte


@pytest.fixture
def clocked(settings, container, clock):
    """The same installation with a clock the test moves."""
    rig = build(settings, clock=clock)
    yield rig
    rig.engine.dispose()


def test_a_drill_restores_the_newest_backup_and_records_it(service):
    service.create()
    newest = service.create().backup
    result = run_drill(service, drill_database_url=None)
    assert result.ok, result.detail
    assert result.backup_id == newest.backup_id
    assert result.recovery_point == newest.created_at
    assert result.rows > 500
    assert result.duration_seconds > 0
    assert service.drills(limit=1) == [result]
    # The scratch copy is gone.
    assert not any(p.name.startswith("drill-") for p in service.staging_dir().iterdir())


def test_a_failed_drill_is_recorded_and_raises_an_alert(settings, service):
    backup_id = service.create().backup.backup_id
    flip_byte(settings.backup_dir / backup_id / "payload.bin", 40)
    with capture_logs() as logs:
        result = run_drill(service, drill_database_url=None)
    assert not result.ok
    assert "chunk 0" in result.detail
    assert next(e for e in logs if e["event"] == "backup.drill_failed")["log_level"] == "error"
    assert service.drills(limit=1)[0].ok is False


def test_a_drill_with_no_backup_fails_and_says_so(service):
    with capture_logs() as logs:
        result = run_drill(service, drill_database_url=None)
    assert not result.ok
    assert "no good backup" in result.detail
    assert any(e["event"] == "backup.drill_failed" for e in logs)


def test_prune_keeps_what_the_policy_says_and_drops_the_rest(clocked, clock):
    service = clocked.backup
    start = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    ids = []
    for days_ago in range(10, -1, -1):
        clock.set(start - timedelta(days=days_ago))
        ids.append(service.create().backup.backup_id)
    clock.set(start + timedelta(hours=1))
    report = service.prune()
    # 7 daily (today and 6 days before) plus the newest of each of 4 ISO weeks and 12 months.
    assert set(ids[-7:]) <= set(report.kept)
    assert set(report.deleted) | set(report.kept) == set(ids)
    assert report.deleted
    assert [b.backup_id for b in service.listing().good] == sorted(report.kept)


def test_prune_removes_interrupted_runs_only_after_the_grace_period(clocked, clock, settings):
    service = clocked.backup
    service.create()
    leftover = settings.backup_dir / "bk-20261122T080000Z-deadbeef"
    leftover.mkdir()
    (leftover / "payload.bin.partial").write_bytes(b"half a backup")
    assert service.prune().leftovers_deleted == ()
    old = (clock.now() - timedelta(hours=7)).timestamp()
    os.utime(leftover / "payload.bin.partial", (old, old))
    assert service.prune().leftovers_deleted == ("bk-20261122T080000Z-deadbeef",)
    assert not leftover.exists()


def test_no_backup_newer_than_26_hours_raises_an_alert(clocked, clock):
    service = clocked.backup
    service.create()
    clock.set(clock.now() + timedelta(hours=25))
    with capture_logs() as logs:
        assert not service.freshness().stale
    assert not logs
    clock.set(clock.now() + timedelta(hours=2))
    with capture_logs() as logs:
        assert service.freshness().stale
    assert logs[0]["event"] == "backup.stale"
    assert logs[0]["log_level"] == "error"


def test_the_daily_job_backs_up_prunes_and_checks_freshness(service):
    report = run_daily_backup(service)
    assert report.error is None
    assert report.created is not None
    assert report.pruned is not None
    assert not report.freshness.stale
