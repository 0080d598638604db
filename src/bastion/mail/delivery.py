"""Delivering the durable outbox: leases, retries with exponential backoff, a worker thread.

- A dispatcher *claims* a due row with one conditional UPDATE (not delivered, not given up, no
  live lease held by anyone), so processes sharing the database never send a message twice at
  the same time. A process that dies mid-send leaves a lease that expires; the message is then
  sent again (at-least-once: SMTP offers nothing stronger).
- Sending happens outside any database transaction (an SMTP timeout must not hold a lock).
- A delivered row is deleted. A failure counts an attempt and retries after
  ``retry_base * 2^(attempts-1)`` (capped); after ``max_attempts`` the row is marked failed, kept
  for the operator, and logged as an error. Rows that cannot be opened or built are failed at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.crypto.errors import CryptoError, KeyringError
from bastion.db import UnitOfWork
from bastion.kernel.clock import Clock
from bastion.mail.models import ERROR_CHARS, QueuedMail
from bastion.mail.outbox import MailDeliveryFailed, Outbox, UnsafeMailHeader
from bastion.mail.queue import MailSealer, open_mail

log = structlog.get_logger("bastion.mail")

BATCH_SIZE = 50
# Far above one SMTP exchange (finite timeouts): a live sender is never overlapped.
LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base: timedelta
    cap: timedelta

    def delay_after(self, attempts: int) -> timedelta:
        exponent = min(max(attempts - 1, 0), 30)
        return min(self.base * (1 << exponent), self.cap)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    waiting: int
    failed: int


class MailDispatcher:
    """Sends due messages through ``transport``; see the module docstring."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        sealer: MailSealer,
        transport: Outbox,
        clock: Clock,
        holder: str,
        retry: RetryPolicy,
    ) -> None:
        self._uow = uow
        self._sealer = sealer
        self._transport = transport
        self._clock = clock
        self._holder = holder
        self._retry = retry

    def deliver_due(self) -> DeliveryReport:
        """Send every message due now (in batches); safe to run in several processes at once."""
        sent = retrying = failed = 0
        while True:
            claimed = self._claim(self._clock.now())
            for row_id, sealed in claimed:
                outcome = self._deliver(row_id, sealed)
                sent += outcome == "sent"
                retrying += outcome == "retrying"
                failed += outcome == "failed"
            if len(claimed) < BATCH_SIZE:
                return DeliveryReport(sent=sent, retrying=retrying, failed=failed)

    def status(self) -> OutboxStatus:
        with self._uow.begin() as session:
            waiting = session.scalar(
                select(func.count()).select_from(QueuedMail).where(QueuedMail.failed_at.is_(None))
            )
            given_up = session.scalar(
                select(func.count())
                .select_from(QueuedMail)
                .where(QueuedMail.failed_at.is_not(None))
            )
        return OutboxStatus(waiting=int(waiting or 0), failed=int(given_up or 0))

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            QueuedMail.failed_at.is_(None),
            QueuedMail.next_attempt_at <= now,
            or_(QueuedMail.lease_expires_at.is_(None), QueuedMail.lease_expires_at <= now),
        )

    def _claim(self, now: datetime) -> list[tuple[str, bytes]]:
        claimed: list[tuple[str, bytes]] = []
        with self._uow.begin() as session:
            candidates = session.execute(
                select(QueuedMail.id, QueuedMail.sealed)
                .where(self._claimable(now))
                .order_by(QueuedMail.next_attempt_at, QueuedMail.id)
                .limit(BATCH_SIZE)
            ).all()
            for row_id, sealed in candidates:
                result = session.execute(
                    update(QueuedMail)
                    .where(QueuedMail.id == row_id, self._claimable(now))
                    .values(lease_holder=self._holder, lease_expires_at=now + LEASE)
                    .execution_options(synchronize_session=False)
                )
                if cast("CursorResult[Any]", result).rowcount:
                    claimed.append((row_id, sealed))
        return claimed

    def _deliver(self, row_id: str, sealed: bytes) -> str:
        try:
            mail = open_mail(self._sealer, row_id, sealed)
            self._transport.send(mail, now=self._clock.now())
        except (CryptoError, KeyringError, UnsafeMailHeader, ValueError, KeyError) as exc:
            # Retrying cannot help a message that cannot be opened or built.
            log.error("mail.undeliverable", message=row_id, reason=type(exc).__name__)
            self._give_up(row_id, type(exc).__name__)
            return "failed"
        except MailDeliveryFailed as exc:
            return self._failed_attempt(row_id, exc)
        with self._uow.begin() as session:
            session.execute(
                delete(QueuedMail).where(
                    QueuedMail.id == row_id, QueuedMail.lease_holder == self._holder
                )
            )
        log.info("mail.delivered", message=row_id)
        return "sent"

    def _failed_attempt(self, row_id: str, exc: MailDeliveryFailed) -> str:
        now = self._clock.now()
        reason = type(exc.__cause__ or exc).__name__[:ERROR_CHARS]
        with self._uow.begin() as session:
            row = session.get(QueuedMail, row_id)
            if row is None or row.lease_holder != self._holder:
                return "retrying"  # our lease lapsed and another process took over
            row.attempts += 1
            row.last_error = reason
            row.lease_holder = None
            row.lease_expires_at = None
            if row.attempts >= self._retry.max_attempts:
                row.failed_at = now
            else:
                row.next_attempt_at = now + self._retry.delay_after(row.attempts)
            attempts, gave_up = row.attempts, row.failed_at is not None
        if gave_up:
            log.error("mail.gave_up", message=row_id, attempts=attempts, reason=reason)
            return "failed"
        log.warning("mail.retrying", message=row_id, attempts=attempts, reason=reason)
        return "retrying"

    def _give_up(self, row_id: str, reason: str) -> None:
        now = self._clock.now()
        with self._uow.begin() as session:
            session.execute(
                update(QueuedMail)
                .where(QueuedMail.id == row_id, QueuedMail.lease_holder == self._holder)
                .values(
                    failed_at=now,
                    last_error=reason[:ERROR_CHARS],
                    lease_holder=None,
                    lease_expires_at=None,
                )
            )


class MailWorker:
    """A daemon thread that delivers the outbox: woken when this process queues mail, and at
    least every ``poll_seconds`` (mail queued by other processes, retries falling due)."""

    def __init__(
        self, dispatcher: MailDispatcher, *, wake: threading.Event, poll_seconds: float
    ) -> None:
        self._dispatcher = dispatcher
        self._wake = wake
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bastion-mail", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._dispatcher.deliver_due()
            except Exception:  # the worker must outlive a database outage; logged in full
                log.exception("mail.worker_failed")
            self._wake.wait(self._poll)
