"""Read-audit group commits on SQLite and PostgreSQL: every event durable before ``record``
returns, fewer commits than events, and every caller told (never left hanging) when the database
fails or stalls."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bastion.audit import AuditWriteFailed, ReadAuditBatcher, SecretInAuditDetails
from bastion.audit.errors import InvalidAuditEvent
from bastion.audit.models import AuditEventRow
from bastion.db import UnitOfWork, make_engine
from tests.integration.audit.conftest import TENANT, event

OTHER_TENANT = "0b4e3c2d-1a2b-4c5d-8e9f-0a1b2c3d4e5f"
THREADS = 12
EVENTS_EACH = 15

pytestmark = pytest.mark.timeout(120)


def _batcher(engine, audit_log, **overrides):
    options = {"max_events": 256, "max_wait_seconds": 0.05, "timeout_seconds": 10.0}
    options.update(overrides)
    return ReadAuditBatcher(uow=UnitOfWork(engine), audit_log=audit_log, **options)


def _count_commits(engine):
    commits = []
    sa_event.listen(engine, "commit", lambda _connection: commits.append(1))
    return commits


def _run_threads(count, work):
    """Run ``work(index)`` on ``count`` threads at once; return each one's result or exception."""
    start = threading.Barrier(count)

    def call(index):
        start.wait()
        try:
            return work(index)
        except Exception as exc:  # returned and asserted on by the caller
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def _chain_rows(engine, chain):
    with Session(engine) as session:
        return session.execute(
            select(AuditEventRow.request_id, AuditEventRow.seq)
            .where(AuditEventRow.chain_id == chain)
            .order_by(AuditEventRow.seq)
        ).all()


def test_concurrent_reads_all_land_in_fewer_commits_and_the_chains_verify(
    engine, audit_log, verifier
):
    batcher = _batcher(engine, audit_log)
    commits = _count_commits(engine)

    def read(thread):
        for number in range(EVENTS_EACH):
            tenant = TENANT if thread % 2 else OTHER_TENANT
            batcher.record(event(thread * 1000 + number, tenant, action="record.read"))

    try:
        results = _run_threads(THREADS, read)
    finally:
        batcher.close()
    assert results == [None] * THREADS
    total = THREADS * EVENTS_EACH
    stats = batcher.stats
    assert stats.events == total
    assert stats.failed_batches == 0
    # Counted by the database engine itself, not only by the batcher's own bookkeeping.
    assert stats.batches == len(commits)
    assert len(commits) < total
    recorded = _chain_rows(engine, TENANT) + _chain_rows(engine, OTHER_TENANT)
    expected = {f"req-{t * 1000 + n}" for t in range(THREADS) for n in range(EVENTS_EACH)}
    assert {row.request_id for row in recorded} == expected
    report = verifier.verify()
    assert report.ok, report
    assert sum(chain.entries_checked for chain in report.chains) == total


def test_record_returns_only_once_its_event_is_committed(engine, audit_log):
    batcher = _batcher(engine, audit_log, max_wait_seconds=0)
    try:
        for number in range(3):
            batcher.record(event(number, action="record.read"))
            # A fresh connection sees it: committed, not merely written in an open transaction.
            with engine.connect() as connection:
                count = connection.scalar(
                    select(func.count()).where(AuditEventRow.request_id == f"req-{number}")
                )
            assert count == 1
    finally:
        batcher.close()


def test_a_failing_database_fails_every_waiter_and_none_hangs(database_url, audit_log):
    # Connected but never migrated: every append fails inside the batch's transaction.
    engine = make_engine(database_url, create=True)
    batcher = _batcher(engine, audit_log)
    try:
        results = _run_threads(THREADS, lambda n: batcher.record(event(n, action="record.read")))
    finally:
        batcher.close()
        engine.dispose()
    assert all(isinstance(result, AuditWriteFailed) for result in results), results
    stats = batcher.stats
    assert stats.events == 0
    assert stats.failed_batches >= 1


def test_a_stalled_database_times_the_waiters_out(engine, audit_log):
    # Another transaction holds the chain head (PostgreSQL) or the write lock (SQLite): the
    # batch cannot commit, and every reader is refused within its timeout instead of waiting.
    batcher = _batcher(engine, audit_log, timeout_seconds=0.5)
    batcher.record(event(0, action="record.read"))  # creates the head row
    blocker = engine.connect()
    try:
        transaction = blocker.begin()
        if engine.dialect.name == "postgresql":
            blocker.execute(text("SELECT 1 FROM audit_chain_heads FOR UPDATE"))
        else:
            blocker.execute(text("UPDATE audit_chain_heads SET last_seq = last_seq"))
        results = _run_threads(4, lambda n: batcher.record(event(n + 1, action="record.read")))
        transaction.rollback()
    finally:
        blocker.close()
        batcher.close()
    assert all(isinstance(result, AuditWriteFailed) for result in results), results
    assert all("not durable within" in str(result) for result in results)


def test_an_invalid_event_fails_alone(engine, audit_log, verifier):
    batcher = _batcher(engine, audit_log)

    def read(number):
        if number == 0:
            return batcher.record(event(number, details={"password": "hunter2"}))
        return batcher.record(event(number, action="record.read"))

    try:
        results = _run_threads(6, read)
    finally:
        batcher.close()
    assert isinstance(results[0], SecretInAuditDetails)
    assert results[1:] == [None] * 5
    assert {row.request_id for row in _chain_rows(engine, TENANT)} == {
        f"req-{n}" for n in range(1, 6)
    }
    assert verifier.verify().ok


def test_a_malformed_tenant_is_refused_before_queueing(engine, audit_log):
    batcher = _batcher(engine, audit_log)
    try:
        with pytest.raises(InvalidAuditEvent):
            batcher.record(event(1, tenant="../etc", action="record.read"))
    finally:
        batcher.close()
    assert batcher.stats.batches == 0


def test_close_flushes_what_is_queued_then_refuses(engine, audit_log):
    batcher = _batcher(engine, audit_log, max_wait_seconds=0.2)
    results = []

    def read(number):
        try:
            batcher.record(event(number, action="record.read"))
            results.append(number)
        except AuditWriteFailed:
            pass

    threads = [threading.Thread(target=read, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    batcher.close()
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads)
    # Whoever was told "done" is in the chain; nobody is left waiting.
    recorded = {row.request_id for row in _chain_rows(engine, TENANT)}
    assert {f"req-{n}" for n in results} <= recorded
    with pytest.raises(AuditWriteFailed):
        batcher.record(event(99, action="record.read"))
