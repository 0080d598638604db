"""The delivery worker: works off the ``alert_deliveries`` outbox with retries and backoff.

Each due delivery is first *claimed* (a conditional UPDATE that only one process can win, in a
short transaction of its own), then sent with no transaction open, then marked sent or
rescheduled. So several Bastion processes, or a scheduler and a cron entry, can run the worker
at once without sending anything twice; a process that dies mid-send leaves a claim that expires,
and the delivery is retried (at-least-once: receivers dedupe on the event id).

A failed attempt ``n`` waits ``retry_base * 2^(n-1)`` seconds, capped at ``retry_max``; after
``max_attempts`` the delivery is marked failed. The event itself always stays in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, cast

import structlog
from sqlalchemy import CursorResult, or_, select, update

from bastion.alerts.errors import AlertDeliveryFailed
from bastion.alerts.models import (
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_SENT,
    AlertDeliveryRow,
    SecurityEventRow,
)
from bastion.alerts.query import stored_event
from bastion.alerts.sinks import Alert, Sink
from bastion.db import UnitOfWork
from bastion.kernel.clock import Clock
from bastion.observability.metrics import ALERTS
from bastion.settings import AlertsSettings

log = structlog.get_logger("bastion.alerts")

# Longer than any sink can take (each webhook phase <= 30 s, SMTP <= 120 s), so a live worker
# never loses its claim mid-send.
CLAIM_SECONDS: Final = 600
MAX_ERROR_CHARS: Final = 300
# A run stops after this many batches, so one call never runs unbounded behind a flood.
MAX_BATCHES_PER_RUN: Final = 20


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # attempts that failed and will be retried
    abandoned: int = 0  # deliveries that used their last attempt


def backoff(settings: AlertsSettings, attempts: int) -> timedelta:
    """How long to wait after failed attempt number ``attempts`` (>= 1)."""
    exponent = min(attempts - 1, 30)  # 2^30 * any base already exceeds every cap
    seconds = min(settings.retry_base_seconds * 2**exponent, settings.retry_max_seconds)
    return timedelta(seconds=seconds)


class AlertDelivery:
    """Sends due deliveries through ``sinks`` (by sink name); see the module docstring."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        settings: AlertsSettings,
        sinks: Mapping[str, Sink],
        clock: Clock,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._uow = uow
        self._settings = settings
        self._sinks = sinks
        self._clock = clock
        self._on_close = on_close

    def close(self) -> None:
        """Release what the sinks hold open (the webhook HTTP client's connections)."""
        if self._on_close is not None:
            self._on_close()

    def run(self) -> DeliveryReport:
        """Deliver everything due now (up to MAX_BATCHES_PER_RUN batches)."""
        report = DeliveryReport()
        for _ in range(MAX_BATCHES_PER_RUN):
            due = self._due_ids()
            for delivery_id in due:
                self._deliver(delivery_id, report)
            if len(due) < self._settings.batch_size:
                break
        return report

    def _due_ids(self) -> list[str]:
        now = self._clock.now()
        rows = AlertDeliveryRow
        with self._uow.begin() as session:
            return list(
                session.scalars(
                    select(rows.id)
                    .where(
                        rows.status == STATUS_PENDING,
                        rows.next_attempt_at <= now,
                        or_(rows.claimed_until.is_(None), rows.claimed_until <= now),
                    )
                    .order_by(rows.next_attempt_at)
                    .limit(self._settings.batch_size)
                )
            )

    def _claim(self, delivery_id: str) -> tuple[str, int, Alert] | None:
        """Take the delivery for CLAIM_SECONDS; None if another worker has it or it is done."""
        now = self._clock.now()
        rows = AlertDeliveryRow
        with self._uow.begin() as session:
            result = session.execute(
                update(rows)
                .where(
                    rows.id == delivery_id,
                    rows.status == STATUS_PENDING,
                    or_(rows.claimed_until.is_(None), rows.claimed_until <= now),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
            if cast("CursorResult[Any]", result).rowcount != 1:
                return None
            delivery = session.get_one(rows, delivery_id)
            event = session.get_one(SecurityEventRow, delivery.event_id)
            attempt = delivery.attempts + 1
            return delivery.sink, attempt, _alert(event, attempt)

    def _deliver(self, delivery_id: str, report: DeliveryReport) -> None:
        claimed = self._claim(delivery_id)
        if claimed is None:
            return
        sink_name, attempt, alert = claimed
        sink = self._sinks.get(sink_name)
        if sink is None:
            # Removed from the settings since the event was recorded: nowhere left to send.
            self._finish(delivery_id, attempt, error="sink no longer configured", final=True)
            report.abandoned += 1
            ALERTS.labels(sink="unknown", outcome="abandoned").inc()
            return
        try:
            sink.send(alert)
        except AlertDeliveryFailed as exc:
            final = attempt >= self._settings.max_attempts
            self._finish(delivery_id, attempt, error=exc.detail, final=final)
            outcome = "abandoned" if final else "failed"
            ALERTS.labels(sink=sink.kind, outcome="failed").inc()
            if final:
                report.abandoned += 1
                ALERTS.labels(sink=sink.kind, outcome="abandoned").inc()
            else:
                report.failed += 1
            log.warning(
                "alert.delivery_failed",
                sink=sink_name,
                event_id=alert.event_id,
                attempt=attempt,
                outcome=outcome,
                reason=exc.detail,
            )
            return
        self._finish(delivery_id, attempt, error=None, final=True)
        report.sent += 1
        ALERTS.labels(sink=sink.kind, outcome="sent").inc()

    def _finish(self, delivery_id: str, attempt: int, *, error: str | None, final: bool) -> None:
        now = self._clock.now()
        values: dict[str, Any] = {"attempts": attempt, "claimed_until": None}
        if error is None:
            values.update(status=STATUS_SENT, sent_at=now, last_error=None)
        else:
            values["last_error"] = error[:MAX_ERROR_CHARS]
            if final:
                values["status"] = STATUS_FAILED
            else:
                values["next_attempt_at"] = now + backoff(self._settings, attempt)
        with self._uow.begin() as session:
            session.execute(
                update(AlertDeliveryRow).where(AlertDeliveryRow.id == delivery_id).values(values)
            )


def _alert(row: SecurityEventRow, attempt: int) -> Alert:
    stored = stored_event(row)
    return Alert(
        event_id=stored.id, occurred_at=stored.occurred_at, event=stored.event, attempt=attempt
    )
