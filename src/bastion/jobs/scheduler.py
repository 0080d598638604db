"""A small in-process scheduler: one daemon thread, jobs at fixed intervals or a daily time.

Each due job runs under a database lease (``JobLeases``), so several Bastion processes sharing a
database run it once between them. A job's failure is logged and never stops the scheduler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import structlog

from bastion.jobs.leases import JobLeases
from bastion.kernel.clock import Clock

log = structlog.get_logger("bastion.jobs")
TICK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Job:
    """``every`` for an interval job, or ``daily_at`` (UTC) for a once-a-day job."""

    name: str
    run: Callable[[], object]
    lease: timedelta
    every: timedelta | None = None
    daily_at: time | None = None

    def next_due(self, after: datetime) -> datetime:
        if self.every is not None:
            return after + self.every
        if self.daily_at is None:
            raise ValueError(f"job {self.name} has neither an interval nor a daily time")
        today = datetime.combine(after.date(), self.daily_at, tzinfo=after.tzinfo)
        return today if today > after else today + timedelta(days=1)


def run_once(job: Job, leases: JobLeases) -> str:
    """Run ``job`` now if no other holder has it: "ok", "failed" or "skipped" (lease taken)."""
    if not leases.acquire(job.name, lease=job.lease):
        log.info("job.skipped", job=job.name, reason="another process holds the lease")
        return "skipped"
    outcome = "failed"
    try:
        job.run()
        outcome = "ok"
    except Exception:  # a job's failure must never stop the scheduler; it is logged in full
        log.exception("job.failed", job=job.name)
    finally:
        leases.release(job.name, outcome=outcome)
    log.info("job.finished", job=job.name, outcome=outcome)
    return outcome


class Scheduler:
    def __init__(self, jobs: Sequence[Job], *, leases: JobLeases, clock: Clock) -> None:
        self._jobs = list(jobs)
        self._leases = leases
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = clock.now()
        # Interval jobs first run one interval after start; daily jobs at their next time.
        self._due = {job.name: job.next_due(now) for job in self._jobs}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bastion-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> list[tuple[str, str]]:
        """Run every job that is due now; returns (name, outcome) for each one run."""
        ran = []
        for job in self._jobs:
            now = self._clock.now()
            if now < self._due[job.name]:
                continue
            ran.append((job.name, run_once(job, self._leases)))
            self._due[job.name] = job.next_due(self._clock.now())
        return ran

    def _loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.tick()
