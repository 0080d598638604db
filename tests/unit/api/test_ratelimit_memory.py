"""The in-process rate-limit storage sweeps expired windows at most once a second, never after
every write (each sweep walks every key: with many clients that made each request slow), and
still counts and frees exactly as ``limits`` does."""

from __future__ import annotations

import asyncio

import pytest
from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from bastion.api import ratelimit
from bastion.api.ratelimit import SweptMemory, async_storage
from bastion.settings import RateLimitSettings


def test_the_default_storage_is_the_swept_one():
    assert isinstance(async_storage(RateLimitSettings()), SweptMemory)


def _counting_sweeps(storage: SweptMemory) -> list[int]:
    """Count the sweeps that actually run (wrapping limits' own, whoever schedules it)."""
    ran: list[int] = []
    sweep = storage._MemoryStorage__expire_events  # type: ignore[attr-defined]

    async def counted() -> None:
        ran.append(1)
        await sweep()

    storage._MemoryStorage__expire_events = counted  # type: ignore[attr-defined]
    return ran


def test_writes_do_not_start_a_sweep_each():
    async def hits():
        storage = SweptMemory()
        ran = _counting_sweeps(storage)
        limiter = SlidingWindowCounterRateLimiter(storage)
        item = parse("1000000/minute")
        for number in range(500):
            assert await limiter.hit(item, "ip", str(number % 50))
            await asyncio.sleep(0)  # the event loop runs between requests
        return len(ran)

    assert asyncio.run(hits()) == 0  # none within the first interval (limits ran ~500)


def test_limits_still_hold_and_expired_windows_are_freed(monkeypatch):
    monkeypatch.setattr(ratelimit, "SWEEP_INTERVAL_SECONDS", 0.0)

    async def run():
        storage = SweptMemory()
        ran = _counting_sweeps(storage)
        limiter = SlidingWindowCounterRateLimiter(storage)
        item = parse("3/second")
        assert [await limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
        counted = [key for key in storage.expirations if key.startswith("LIMITER/k/")]
        await asyncio.sleep(2.2)  # both the current and the previous window have expired
        assert await limiter.hit(item, "other")  # a write schedules a sweep
        assert storage.timer is not None
        await storage.timer
        left = [key for key in storage.expirations if key.startswith("LIMITER/k/")]
        return counted, left, len(ran)

    counted, left, sweeps = asyncio.run(run())
    assert counted  # the windows of "k" were there
    assert left == []  # and the sweep freed them
    assert sweeps >= 1


@pytest.mark.parametrize("keys", [10, 5_000])
def test_a_write_costs_the_same_with_many_keys_counted(keys):
    """Not a timing test: it counts sweeps, which used to follow nearly every write."""

    async def run():
        storage = SweptMemory()
        ran = _counting_sweeps(storage)
        limiter = SlidingWindowCounterRateLimiter(storage)
        item = parse("1000000/minute")
        for number in range(keys):
            await limiter.hit(item, "ip", str(number))
        for number in range(200):
            await limiter.hit(item, "ip", str(number))
            await asyncio.sleep(0)
        return len(ran)

    assert asyncio.run(run()) == 0
