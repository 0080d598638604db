"""Group commit for read events: many reads, one durable transaction.

Writes are audited in their own transaction (``AuditLog.append`` in the caller's unit of work).
Reads have no transaction worth the name, and a synchronous commit (an fsync on SQLite, a WAL
flush on PostgreSQL) per read would cap reads at the disk's fsync rate. ``ReadAuditBatcher``
collects the read events of concurrent requests and appends them in one transaction.

The guarantee: ``record(event)`` returns only after the transaction holding ``event`` has
committed. A route calls it after reading and before answering, so nothing is served unaudited;
if the batch fails or is not durable within ``timeout``, the route fails (AuditWriteFailed, 503).
The converse does not hold: a caller that timed out may find its event committed a moment later
(audited, never served), which errs on the side of the log.

One writer thread commits batches one at a time. A batch is whatever has queued while the
previous one was committing (natural group commit: no added latency when idle), plus whatever
arrives within ``max_wait`` of its first event, up to ``max_events``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.errors import AuditWriteFailed, InvalidAuditEvent
from bastion.audit.events import AuditEvent, chain_for
from bastion.audit.service import AuditLog
from bastion.db import UnitOfWork

log = structlog.get_logger("bastion.audit")

THREAD_NAME: Final = "bastion-read-audit"
# How long close() waits for the writer to drain what is queued before giving up on it.
CLOSE_TIMEOUT_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Counters since start: committed batches and events, failed batches."""

    batches: int
    events: int
    failed_batches: int


class _Waiter:
    """One queued event and the outcome its caller waits for."""

    __slots__ = ("done", "error", "event")

    def __init__(self, event: AuditEvent) -> None:
        self.event = event
        self.done = threading.Event()
        self.error: BaseException | None = None


class ReadAuditBatcher:
    """Appends read events in group commits; ``record`` blocks until its event is durable.

    Thread-safe; meant to be called from FastAPI's threadpool (sync routes), never from the event
    loop (it blocks). The writer thread starts on ``start()`` or on the first ``record``; ``close``
    commits what is queued, then refuses new events.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        audit_log: AuditLog,
        max_events: int,
        max_wait_seconds: float,
        timeout_seconds: float,
    ) -> None:
        if max_events < 1 or max_wait_seconds < 0 or timeout_seconds <= 0:
            raise ValueError("max_events >= 1, max_wait >= 0 and timeout > 0 are required")
        self._uow = uow
        self._audit_log = audit_log
        self._max_events = max_events
        self._max_wait = max_wait_seconds
        self._timeout = timeout_seconds
        self._queue: list[_Waiter] = []
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._batches = 0
        self._events = 0
        self._failed = 0

    @property
    def stats(self) -> BatcherStats:
        with self._wakeup:
            return BatcherStats(self._batches, self._events, self._failed)

    def start(self) -> None:
        """Start the writer thread (idempotent). Raises AuditWriteFailed once closed."""
        with self._wakeup:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closing:
            raise AuditWriteFailed("the read audit is shut down")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably, sharing the commit with concurrent callers.

        Returns once the transaction holding it has committed. Raises InvalidAuditEvent (and its
        subclasses) for a malformed event, which fails that event alone, and AuditWriteFailed if
        its batch did not commit or did not within the timeout, or after ``close``.
        """
        chain_for(event.tenant_id)  # a malformed tenant id fails here, not in someone's batch
        waiter = _Waiter(event)
        with self._wakeup:
            self._start_locked()
            self._queue.append(waiter)
            self._wakeup.notify()
        if not waiter.done.wait(self._timeout):
            with self._wakeup:
                # Still queued: withdraw it, so an unserved read is not logged as served either.
                if waiter in self._queue:
                    self._queue.remove(waiter)
            raise AuditWriteFailed(f"the read audit was not durable within {self._timeout:g} s")
        if isinstance(waiter.error, InvalidAuditEvent):
            raise waiter.error
        if waiter.error is not None:
            raise AuditWriteFailed("the read audit batch did not commit") from waiter.error

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Commit everything queued, stop the writer and refuse later events (idempotent)."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("audit.read_batcher_stuck", queued=len(self._queue))

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._commit(batch)

    def _next_batch(self) -> list[_Waiter] | None:
        with self._wakeup:
            while not self._queue:
                if self._closing:
                    return None
                self._wakeup.wait()
            # Linger for latecomers only while the batch has room and we are not shutting down.
            deadline = time.monotonic() + self._max_wait
            while len(self._queue) < self._max_events and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.wait(remaining)
            batch = self._queue[: self._max_events]
            del self._queue[: self._max_events]
            return batch

    def _commit(self, batch: list[_Waiter]) -> None:
        # Chain order, stable within a chain: two processes' batches then lock chain heads in the
        # same order on PostgreSQL and cannot deadlock each other.
        ordered = sorted(batch, key=lambda waiter: chain_for(waiter.event.tenant_id))
        failure: BaseException | None = None
        try:
            with self._uow.begin() as session:
                # One head lock and one multi-row INSERT per chain, not a statement per event.
                outcomes = self._audit_log.append_batch(session, [w.event for w in ordered])
                for waiter, outcome in zip(ordered, outcomes, strict=True):
                    if isinstance(outcome, InvalidAuditEvent):
                        # Refused before the event touched the database: the rest of the
                        # batch is unharmed, and only this caller learns its event was refused.
                        waiter.error = outcome
        except (AuditWriteFailed, SQLAlchemyError) as exc:
            failure = exc
        except Exception as exc:  # the writer must outlive any failure, or every caller hangs
            log.exception("audit.read_batch_crashed")
            failure = exc
        with self._wakeup:
            if failure is None:
                self._batches += 1
                self._events += sum(1 for waiter in batch if waiter.error is None)
            else:
                self._failed += 1
        if failure is not None:
            log.error("audit.read_batch_failed", events=len(batch), error=type(failure).__name__)
        for waiter in batch:
            if failure is not None and waiter.error is None:
                waiter.error = failure
            waiter.done.set()
