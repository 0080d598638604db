"""Read audit on SQLite: group commits (``ReadAuditBatcher``) against one commit per event.

The same number of threads (as FastAPI's threadpool would run sync read routes) each record
read events, waiting for each to be durable before the next, as a route does before answering.
Baseline: each event appended in its own transaction (``AuditLog.append`` + commit), the
synchronous path a read would take without the batcher. Same database settings (WAL,
``synchronous=FULL``), fresh database each run, runs alternate and the median is kept.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from bastion.audit import AuditEvent, AuditLog, AuditWriteFailed, ReadAuditBatcher
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.db.engine import SQLITE_BUSY_TIMEOUT_MS
from bastion.kernel.clock import SystemClock
from bastion.settings import AuditSettings
from bench.bench_audit import TENANT, _MacOnlyKeyring
from bench.report import Figure, print_figure, print_ratio

ROUNDS = 3
THREADS = 16
EVENTS_EACH = 150


def _event(thread: int, number: int) -> AuditEvent:
    return AuditEvent(
        action="record.read",
        tenant_id=TENANT,
        actor_user_id=f"user-{thread}",
        target=f"collection:customers/record:{number:08d}",
        source_ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) bench",
        request_id=f"req-{thread:03d}-{number:08d}",
        details={"collection": "customers"},
    )


def _fresh(directory: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{directory / name}", create=True)
    upgrade_to_head(engine)
    return engine


def _threads(record: Callable[[AuditEvent], None]) -> tuple[float, int]:
    """(durable events/s, events refused) over THREADS threads each recording EVENTS_EACH
    events, one after another; a refused event does not count towards the rate."""
    start = threading.Barrier(THREADS + 1)
    refused: list[BaseException] = []

    def work(thread: int) -> None:
        start.wait()
        for number in range(EVENTS_EACH):
            try:
                record(_event(thread, number))
            except AuditWriteFailed as exc:  # e.g. SQLite's busy timeout under contention
                refused.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    return (THREADS * EVENTS_EACH - len(refused)) / elapsed, len(refused)


def _batched(directory: Path, round_number: int, settings: AuditSettings) -> tuple[float, float]:
    engine = _fresh(directory, f"batched-{round_number}.db")
    log = AuditLog(pseudonymizer=_MacOnlyKeyring(), clock=SystemClock(), settings=settings)
    batcher = ReadAuditBatcher(
        uow=UnitOfWork(engine),
        audit_log=log,
        max_events=settings.read_batch_max_events,
        max_wait_seconds=settings.read_batch_max_wait_ms / 1000,
        timeout_seconds=settings.read_timeout_seconds,
    )
    try:
        rate, refused = _threads(batcher.record)
    finally:
        batcher.close()
        engine.dispose()
    if refused:
        raise RuntimeError(f"the batcher refused {refused} events")
    stats = batcher.stats
    return rate, stats.events / max(stats.batches, 1)


def _one_commit_each(
    directory: Path, round_number: int, settings: AuditSettings
) -> tuple[float, int]:
    engine = _fresh(directory, f"single-{round_number}.db")
    log = AuditLog(pseudonymizer=_MacOnlyKeyring(), clock=SystemClock(), settings=settings)
    uow = UnitOfWork(engine)

    def record(event: AuditEvent) -> None:
        with uow.begin() as session:
            log.append(session, event)

    try:
        return _threads(record)
    finally:
        engine.dispose()


def main() -> None:
    print(f"started {datetime.now(UTC).isoformat(timespec='seconds')}", flush=True)
    settings = AuditSettings()
    batched, single, sizes, refused = [], [], [], 0
    with tempfile.TemporaryDirectory(prefix="bench-read-audit-") as name:
        directory = Path(name)
        for round_number in range(ROUNDS):
            rate, mean_batch = _batched(directory, round_number, settings)
            batched.append(rate)
            sizes.append(mean_batch)
            rate, failed = _one_commit_each(directory, round_number, settings)
            single.append(rate)
            refused += failed
    print_ratio(
        Figure(f"read audit, group commits, {THREADS} threads", statistics.median(batched), "/s"),
        Figure("one commit per event, same threads", statistics.median(single), "/s"),
        note=f"max wait {settings.read_batch_max_wait_ms:g} ms",
    )
    if refused:
        total = ROUNDS * THREADS * EVENTS_EACH
        print(
            f"note: one commit per event refused {refused} of {total} events "
            f"(SQLite busy timeout, {SQLITE_BUSY_TIMEOUT_MS} ms); the batcher refused none",
            flush=True,
        )
    print_figure(Figure("events per group commit (mean)", statistics.median(sizes), ""))


if __name__ == "__main__":
    main()
