"""Two processes' guards sharing Redis count one window; Redis down means no login at all."""

import pytest
from limits.storage import storage_from_string

from bastion.detection import Counters, CountersUnavailable
from bastion.identity import InvalidCredentials
from tests.integration.detection.conftest import PASSWORD, build_rig, redis_counters

EMAIL = "alice@example.com"


def test_failures_spread_over_two_processes_sharing_redis_lock_after_n(
    engine, keyring, tmp_path, redis_prefix
):
    first = build_rig(engine, keyring, tmp_path / "mail", redis_counters(redis_prefix))
    second = build_rig(engine, keyring, tmp_path / "mail", redis_counters(redis_prefix))
    first.signup(EMAIL)
    for n in range(5):
        with pytest.raises(InvalidCredentials):
            (first, second)[n % 2].login(EMAIL, "wrong password entirely")
    for rig in (first, second):
        with pytest.raises(InvalidCredentials):
            rig.login(EMAIL, PASSWORD)


def test_with_only_process_memory_the_database_lock_is_still_seen_by_both(
    engine, keyring, tmp_path
):
    from limits.storage import MemoryStorage

    first = build_rig(engine, keyring, tmp_path / "mail", Counters(MemoryStorage()))
    second = build_rig(engine, keyring, tmp_path / "mail", Counters(MemoryStorage()))
    first.signup(EMAIL)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            first.login(EMAIL, "wrong password entirely")
    with pytest.raises(InvalidCredentials):
        second.login(EMAIL, PASSWORD)


def test_counters_down_refuse_every_login_with_503_and_change_nothing(engine, keyring, tmp_path):
    dead = storage_from_string(
        "redis://127.0.0.1:1/0", wrap_exceptions=True, socket_connect_timeout=0.2
    )
    rig = build_rig(engine, keyring, tmp_path / "mail", Counters(dead))
    rig.signup(EMAIL)
    for password in ("wrong password entirely", PASSWORD):
        with pytest.raises(CountersUnavailable) as refused:
            rig.login(EMAIL, password)
        assert refused.value.code == "detection.counters_unavailable"
