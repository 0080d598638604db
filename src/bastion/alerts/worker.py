"""The delivery worker thread `bastion serve` runs next to the HTTP server.

Apart from the jobs scheduler on purpose: a long job there (a backup) must not hold alerts back,
and a hanging webhook must not hold jobs back. Safe to run in every process at once (deliveries
are claimed row by row; see ``AlertDelivery``). For cron-driven installations the same work is
the ``alerts.deliver`` job.
"""

from __future__ import annotations

import threading

import structlog

from bastion.alerts.delivery import AlertDelivery

log = structlog.get_logger("bastion.alerts")


class DeliveryWorker:
    def __init__(self, delivery: AlertDelivery, *, poll_seconds: float) -> None:
        self._delivery = delivery
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bastion-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._delivery.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._delivery.run()
            except Exception:  # the database may be down for a while; never let the thread die
                log.exception("alert.worker_failed")
            self._stop.wait(self._poll_seconds)
