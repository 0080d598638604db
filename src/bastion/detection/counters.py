"""Sliding-window counters over the ``limits`` library, in this process or in a shared Redis.

Detection (login failures) and the HTTP rate limits count through the same storage URL, so two
processes sharing Redis share lockout and rate-limit counters. A storage that cannot answer
raises ``CountersUnavailable``: login then fails closed (503), never "unlimited attempts".
"""

from __future__ import annotations

import threading
import time
from typing import Final, Literal

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from bastion.detection.errors import CountersUnavailable
from bastion.settings import RateLimitSettings

MEMORY_URL: Final = "memory://"
# How often the in-process counters drop windows that nobody reads again (see ProcessMemory).
SWEEP_INTERVAL_SECONDS: Final = 1.0
log = structlog.get_logger("bastion.detection")
Strategy = Literal["sliding-window-counter", "moving-window"]


class ProcessMemory(MemoryStorage):
    """``limits``' in-process storage without a thread per counter write.

    ``MemoryStorage`` sweeps expired windows in a ``threading.Timer`` that fires 10 ms after a
    write and ends; the next write starts a new one. At login rates that is a new thread for
    nearly every login, and the login waits for it to start (the GIL and a free core: about a
    millisecond with both cores busy). Reads already ignore expired windows, so the sweep only
    frees memory: here it runs inline, in the writing thread, at most once per
    ``SWEEP_INTERVAL_SECONDS``. The counting itself is ``MemoryStorage``'s, unchanged.
    """

    def __init__(self) -> None:
        super().__init__(wrap_exceptions=True)
        self._sweep_lock = threading.Lock()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS

    # Replaces MemoryStorage's private scheduling hook (name-mangled there); a unit test
    # fails if a counter write starts a thread again.
    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - the mangled name
        now = time.monotonic()
        if now < self._next_sweep or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + SWEEP_INTERVAL_SECONDS
            getattr(self, "_MemoryStorage__expire_events")()  # noqa: B009 - mangled name
        finally:
            self._sweep_lock.release()


def storage_options(settings: RateLimitSettings) -> dict[str, float | str | bool]:
    """Options for a Redis storage: bounded waits, so a dead Redis is noticed in time."""
    url = settings.storage_url.get_secret_value() if settings.storage_url else MEMORY_URL
    if url.startswith(MEMORY_URL):
        return {}
    return {
        "socket_timeout": settings.storage_timeout_seconds,
        "socket_connect_timeout": settings.storage_timeout_seconds,
        "key_prefix": settings.key_prefix,
    }


def storage_url(settings: RateLimitSettings) -> str:
    return settings.storage_url.get_secret_value() if settings.storage_url else MEMORY_URL


def window(amount: int, seconds: int) -> RateLimitItem:
    """``amount`` events per ``seconds``."""
    return RateLimitItemPerSecond(amount, seconds)


class Counters:
    """Hit, read and clear sliding windows; every storage failure is ``CountersUnavailable``."""

    def __init__(self, storage: Storage, strategy: Strategy = "sliding-window-counter") -> None:
        self._storage = storage
        self._limiter: RateLimiter = (
            MovingWindowRateLimiter(storage)
            if strategy == "moving-window"
            else SlidingWindowCounterRateLimiter(storage)
        )

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> Counters:
        url = storage_url(settings)
        if url.startswith(MEMORY_URL):
            return cls(ProcessMemory(), settings.strategy)
        storage = storage_from_string(url, wrap_exceptions=True, **storage_options(settings))
        if not isinstance(storage, Storage):
            raise TypeError("a synchronous storage URL is required")  # pragma: no cover
        return cls(storage, settings.strategy)

    @property
    def shared(self) -> bool:
        """True when other processes see these counters (Redis), False for process memory."""
        return not storage_url_is_memory(self._storage)

    def hit(self, item: RateLimitItem, *key: str) -> bool:
        """Count one event; False if the window was already full (the event is not counted)."""
        try:
            return self._limiter.hit(item, *key)
        except StorageError as exc:
            raise _unavailable(exc) from None

    def count(self, item: RateLimitItem, *key: str) -> int:
        """Events in the window now."""
        try:
            stats = self._limiter.get_window_stats(item, *key)
        except StorageError as exc:
            raise _unavailable(exc) from None
        return item.amount - stats.remaining

    def clear(self, item: RateLimitItem, *key: str) -> None:
        try:
            self._limiter.clear(item, *key)
        except StorageError as exc:
            raise _unavailable(exc) from None


def storage_url_is_memory(storage: Storage) -> bool:
    return "memory" in type(storage).__name__.lower()


def _unavailable(exc: StorageError) -> CountersUnavailable:
    # The driver's message names hosts and ports: the log gets the kind, the caller nothing.
    log.error("detection.counters_unavailable", error=type(exc.storage_error).__name__)
    return CountersUnavailable()
