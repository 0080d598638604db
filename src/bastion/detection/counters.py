"""Sliding-window counters over the ``limits`` library, in this process or in a shared Redis.

Detection (login failures) and the HTTP rate limits count through the same storage URL, so two
processes sharing Redis share lockout and rate-limit counters. A storage that cannot answer
raises ``CountersUnavailable``: login then fails closed (503), never "unlimited attempts".
"""

from __future__ import annotations

from typing import Final, Literal

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from bastion.detection.errors import CountersUnavailable
from bastion.settings import RateLimitSettings

MEMORY_URL: Final = "memory://"
log = structlog.get_logger("bastion.detection")
Strategy = Literal["sliding-window-counter", "moving-window"]


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
        storage = storage_from_string(
            storage_url(settings), wrap_exceptions=True, **storage_options(settings)
        )
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
