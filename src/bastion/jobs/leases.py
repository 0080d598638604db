"""Database leases: at most one holder per job across every process sharing the database.

Taking a lease is one conditional UPDATE (free, expired, or already ours) or, for a job never run,
an INSERT that loses cleanly to a concurrent one on the primary key. A holder that dies leaves a
lease that expires on its own; a job that outlives its lease may overlap a later run, so leases
are sized well above a job's expected duration and jobs themselves stay idempotent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError

from bastion.db import UnitOfWork
from bastion.jobs.models import JobLease
from bastion.kernel.clock import Clock, as_utc


class JobLeases:
    def __init__(self, *, uow: UnitOfWork, clock: Clock, holder: str) -> None:
        self._uow = uow
        self._clock = clock
        self.holder = holder

    def acquire(self, name: str, *, lease: timedelta) -> bool:
        """True if this holder now holds ``name`` until ``now + lease``."""
        now = self._clock.now()
        with self._uow.begin() as session:
            result = session.execute(
                update(JobLease)
                .where(
                    JobLease.name == name,
                    or_(JobLease.expires_at <= now, JobLease.holder == self.holder),
                )
                .values(holder=self.holder, expires_at=now + lease, last_started_at=now)
            )
            if cast("CursorResult[Any]", result).rowcount:
                return True
            if session.get(JobLease, name) is not None:
                return False
        try:
            with self._uow.begin() as session:
                session.add(
                    JobLease(
                        name=name,
                        holder=self.holder,
                        expires_at=now + lease,
                        last_started_at=now,
                    )
                )
        except IntegrityError:
            return False  # another process created it first, and so holds it
        return True

    def release(self, name: str, *, outcome: str) -> None:
        """Give the lease back (it expires now) and record how the run ended."""
        now = self._clock.now()
        with self._uow.begin() as session:
            session.execute(
                update(JobLease)
                .where(JobLease.name == name, JobLease.holder == self.holder)
                .values(expires_at=now, last_finished_at=now, last_outcome=outcome)
            )

    def last_run(self, name: str) -> tuple[datetime | None, str | None]:
        """When ``name`` last finished (any holder) and how."""
        with self._uow.begin() as session:
            row = session.get(JobLease, name)
            if row is None or row.last_finished_at is None:
                return None, None
            return as_utc(row.last_finished_at), row.last_outcome
