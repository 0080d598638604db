"""The in-process counters: limits' sliding windows, without a thread per counter write."""

import threading
import time

from limits.storage import MemoryStorage

from bastion.detection import counters as counters_module
from bastion.detection.counters import Counters, ProcessMemory, window
from bastion.settings import RateLimitSettings


def _threads_started_by(action) -> int:
    started = 0
    original = threading.Thread.start

    def counting_start(self):
        nonlocal started
        started += 1
        original(self)

    threading.Thread.start = counting_start
    try:
        action()
    finally:
        threading.Thread.start = original
    return started


def test_counter_writes_start_no_thread():
    counters = Counters(ProcessMemory())
    item = window(100, 60)

    def hits():
        for i in range(20):
            counters.hit(item, "account", str(i % 3))
            time.sleep(0.012)  # past limits' 10 ms timer: MemoryStorage would start another

    assert _threads_started_by(hits) == 0


def test_plain_memory_storage_does_start_threads():
    # The behaviour ProcessMemory replaces, so that the test above can fail.
    counters = Counters(MemoryStorage())
    item = window(100, 60)

    def hits():
        for _ in range(3):
            counters.hit(item, "account", "a")
            time.sleep(0.012)

    assert _threads_started_by(hits) >= 2


def test_windows_count_and_clear_as_before():
    counters = Counters(ProcessMemory())
    item = window(3, 60)
    assert [counters.hit(item, "account", "k") for _ in range(4)] == [True, True, True, False]
    assert counters.count(item, "account", "k") == 3
    counters.clear(item, "account", "k")
    assert counters.count(item, "account", "k") == 0


def test_expired_windows_are_swept_inline(monkeypatch):
    monkeypatch.setattr(counters_module, "SWEEP_INTERVAL_SECONDS", 0.0)
    storage = ProcessMemory()
    counters = Counters(storage)
    counters.hit(window(5, 1), "account", "old")
    storage.expirations = dict.fromkeys(storage.expirations, 0.0)  # as if long expired
    counters.hit(window(5, 60), "account", "new")
    assert not [key for key in storage.storage if "old" in key]


def test_the_default_settings_count_in_process_memory():
    assert isinstance(Counters.from_settings(RateLimitSettings())._storage, ProcessMemory)
