"""Leases and the scheduler on both backends: a job runs once across processes, failures are
contained, and the catalogue's jobs do their real work."""

import threading
from datetime import UTC, datetime, time, timedelta

import pytest

from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.jobs import Job, JobLeases, Scheduler
from bastion.jobs.scheduler import run_once
from bastion.kernel.clock import FrozenClock

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FrozenClock(NOW)


def _leases(engine, clock, holder):
    return JobLeases(uow=UnitOfWork(engine), clock=clock, holder=holder)


def test_a_held_lease_keeps_other_holders_out_until_it_expires_or_is_released(engine, clock):
    a, b = _leases(engine, clock, "a"), _leases(engine, clock, "b")
    assert a.acquire("job", lease=timedelta(minutes=5))
    assert not b.acquire("job", lease=timedelta(minutes=5))
    assert a.acquire("job", lease=timedelta(minutes=5))  # the holder may renew
    clock.set(NOW + timedelta(minutes=6))
    assert b.acquire("job", lease=timedelta(minutes=5))  # expired: a crashed holder is replaced
    b.release("job", outcome="ok")
    assert a.acquire("job", lease=timedelta(minutes=5))
    assert b.last_run("job") == (NOW + timedelta(minutes=6), "ok")


def test_many_processes_racing_for_a_new_job_yield_exactly_one_holder(engine, clock):
    winners = []
    barrier = threading.Barrier(6)

    def race(holder):
        leases = _leases(engine, clock, holder)
        barrier.wait()
        if leases.acquire("fresh-job", lease=timedelta(minutes=5)):
            winners.append(holder)

    threads = [threading.Thread(target=race, args=(f"h{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_a_failing_job_is_recorded_and_does_not_stop_the_others(engine, clock):
    ran = []

    def boom():
        raise RuntimeError("job exploded")

    scheduler = Scheduler(
        [
            Job(name="boom", run=boom, every=timedelta(minutes=1), lease=timedelta(minutes=5)),
            Job(
                name="fine",
                run=lambda: ran.append(1),
                every=timedelta(minutes=1),
                lease=timedelta(minutes=5),
            ),
        ],
        leases=_leases(engine, clock, "s"),
        clock=clock,
    )
    assert scheduler.tick() == []  # nothing due before the first interval
    clock.set(NOW + timedelta(minutes=1))
    assert scheduler.tick() == [("boom", "failed"), ("fine", "ok")]
    assert ran == [1]
    assert _leases(engine, clock, "x").last_run("boom")[1] == "failed"
    assert scheduler.tick() == []  # next run one interval later


def test_two_schedulers_on_one_database_run_a_due_job_once(engine, clock):
    runs = []
    release = threading.Event()

    def slow():
        runs.append(1)
        release.wait(5)

    job = Job(name="slow", run=slow, every=timedelta(minutes=1), lease=timedelta(minutes=5))
    first = _leases(engine, clock, "first")
    second = _leases(engine, clock, "second")
    worker = threading.Thread(target=run_once, args=(job, first))
    worker.start()
    while not runs:
        pass
    assert run_once(job, second) == "skipped"
    release.set()
    worker.join()
    assert runs == [1]


def test_daily_jobs_fall_due_at_their_time_of_day():
    job = Job(name="d", run=lambda: None, daily_at=time(3, 0), lease=timedelta(hours=1))
    assert job.next_due(datetime(2026, 11, 22, 2, 0, tzinfo=UTC)) == datetime(
        2026, 11, 22, 3, 0, tzinfo=UTC
    )
    assert job.next_due(datetime(2026, 11, 22, 3, 0, tzinfo=UTC)) == datetime(
        2026, 11, 23, 3, 0, tzinfo=UTC
    )
