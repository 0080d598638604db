"""Outage behaviour: the configured Redis (rate-limit and detection counters) dies under load.

The shared Redis on 6379 serves other tests, so this module starts a private ``redis-server`` on
a free port (no persistence) and points a real server at it. Logins (wrong passwords: the
brute-force shape), reads (``GET /api/v1/me``) and writes (new tenants) keep going while the
private Redis is killed with SIGKILL. docs/detection.md promises, and this checks:

- authentication fails closed: every login started during the outage answers 503 problem+json
  with ``Retry-After`` (``ratelimit.storage_unavailable`` or ``detection.counters_unavailable``),
  never a 401 (a password checked without a counter is an unlimited attempt), quickly;
- reads and writes fail open (200/201), so a Redis outage is not a full outage;
- one HIGH ``ratelimit.storage_unavailable`` security event is recorded;
- when Redis is back on the same port, logins are counted and answered again without a restart.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from bastion.alerts import Severity
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, free_port

# A server start (up to 90 s on a loaded machine) and ~15 s of load and outage (each phase waits
# up to PHASE_DEADLINE_SECONDS for every kind of request on a loaded machine).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PASSWORD = "correct horse battery staple"
FAIL_CLOSED_CODES = {"ratelimit.storage_unavailable", "detection.counters_unavailable"}
# Redis calls time out after 0.5 s (rate_limits.storage_timeout_seconds); a refused connection
# is immediate. Anything slower during the outage is a worker stuck on a dead socket.
SLOWEST_ANSWER_SECONDS = 5.0
SETTLE_SECONDS = 0.5  # requests already past the counters when Redis died may finish normally
RECOVERY_SECONDS = 20
PHASE_DEADLINE_SECONDS = 60
KINDS = {"auth", "read", "write"}


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing: install the Debian package `redis-server`")
        pytest.skip("redis-server is not installed (Debian package `redis-server`)")
    return binary


class PrivateRedis:
    """A throw-away redis-server on a free port, killed and restarted by the test."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        self.process = subprocess.Popen(
            [self.binary, *args, "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        client = redis.Redis(port=self.port, socket_timeout=1)
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server on {self.port} did not answer")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    instance = PrivateRedis(_redis_server_binary(), tmp_path_factory.mktemp("redis"))
    instance.start()
    yield instance
    instance.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, private_redis: PrivateRedis) -> Iterator[ServerProcess]:
    env = {
        **CHEAP_ARGON2_ENV,
        "BASTION_RATE_LIMITS__STORAGE_URL": f"redis://127.0.0.1:{private_redis.port}/0",
        "BASTION_RATE_LIMITS__KEY_PREFIX": f"outage-{secrets.token_hex(4)}",
    }
    process = ServerProcess(tmp_path_factory.mktemp("redis-outage") / "data", env=env)
    process.init()
    process.start()
    yield process
    process.stop()


@dataclass
class Observation:
    kind: str
    started: float
    seconds: float
    status: int | None  # None: no answer within the client timeout
    content_type: str = ""
    code: str | None = None
    retry_after: str | None = None


@dataclass
class Recorder:
    seen: list[Observation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, client: httpx.Client, kind: str, method: str, path: str, **kwargs) -> None:
        started = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError:
            seen = Observation(kind, started, time.monotonic() - started, None)
        else:
            problem = response.headers.get("content-type") == "application/problem+json"
            seen = Observation(
                kind,
                started,
                time.monotonic() - started,
                response.status_code,
                response.headers.get("content-type", ""),
                response.json().get("code") if problem else None,
                response.headers.get("retry-after"),
            )
        with self.lock:
            self.seen.append(seen)

    def wait_for_each_kind(self, *, after: float, at_least_seconds: float) -> None:
        """Let the load run for at least the given time and until every kind of request has
        been answered at least once since ``after``: on a loaded CI machine one write can take
        longer than a fixed sleep, which left a phase without a single write to check."""
        started = time.monotonic()
        deadline = started + PHASE_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                kinds = {o.kind for o in self.seen if o.started > after}
            if kinds >= KINDS and time.monotonic() - started >= at_least_seconds:
                return
            time.sleep(0.05)
        raise AssertionError(f"only {sorted(kinds)} answered within {PHASE_DEADLINE_SECONDS}s")


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=10)


def _load(server: ServerProcess, email: str, token: str, stop: threading.Event, rec: Recorder):
    headers = {"Authorization": f"Bearer {token}"}
    wrong = {"email": email, "password": "not the password at all"}

    def guesser() -> None:
        with _client(server) as client:
            while not stop.is_set():
                rec.call(client, "auth", "POST", "/api/v1/auth/login", json=wrong)
                time.sleep(0.02)

    def reader() -> None:
        with _client(server) as client:
            while not stop.is_set():
                rec.call(client, "read", "GET", "/api/v1/me", headers=headers)
                time.sleep(0.02)

    def writer() -> None:
        with _client(server) as client:
            while not stop.is_set():
                slug = f"t-{secrets.token_hex(5)}"
                body = {"name": slug, "slug": slug}
                rec.call(client, "write", "POST", "/api/v1/tenants", json=body, headers=headers)
                time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (guesser, guesser, reader, writer)]
    for thread in threads:
        thread.start()
    return threads


def _security_events(server: ServerProcess) -> list[int]:
    with sqlite3.connect(server.data_dir / "bastion.db") as connection:
        rows = connection.execute(
            "SELECT severity FROM security_events WHERE type = 'ratelimit.storage_unavailable'"
        ).fetchall()
    return [int(row[0]) for row in rows]


def _wait_until_logins_are_counted(server: ServerProcess, email: str) -> float:
    deadline = time.monotonic() + RECOVERY_SECONDS
    with _client(server) as client:
        while time.monotonic() < deadline:
            login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            if login.status_code == 200:
                return time.monotonic()
            time.sleep(0.1)
    raise AssertionError(f"logins still refused {RECOVERY_SECONDS}s after Redis came back")


def test_a_lost_redis_shuts_authentication_alerts_and_recovers(server, private_redis):
    client = server.client
    email = f"redis-{secrets.token_hex(4)}@example.com"
    signup = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert _security_events(server) == []

    recorder, stop = Recorder(), threading.Event()
    threads = _load(server, email, login.json()["token"], stop, recorder)
    try:
        recorder.wait_for_each_kind(after=0.0, at_least_seconds=1.5)
        cut_at = time.monotonic()
        private_redis.kill()
        down_at = time.monotonic()
        recorder.wait_for_each_kind(after=down_at + SETTLE_SECONDS, at_least_seconds=3.0)
        up_at = time.monotonic()
        private_redis.start()  # same port, empty: every counter starts again from zero
        recovered_at = _wait_until_logins_are_counted(server, email)
        recorder.wait_for_each_kind(after=recovered_at, at_least_seconds=1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)

    seen = recorder.seen
    assert not [o for o in seen if o.status is None or (o.status >= 500 and o.status != 503)]
    before = [o for o in seen if o.started + o.seconds < cut_at]
    during = [o for o in seen if down_at + SETTLE_SECONDS < o.started and o.started < up_at]
    after = [o for o in seen if o.started > recovered_at]
    by_kind = {
        (part, kind): [o for o in group if o.kind == kind]
        for part, group in (("before", before), ("during", during), ("after", after))
        for kind in sorted(KINDS)
    }
    assert all(by_kind.values()), {k: len(v) for k, v in by_kind.items()}

    # Before and after: wrong passwords are checked (401), reads and writes served.
    for part in ("before", "after"):
        assert {o.status for o in by_kind[part, "auth"]} == {401}, part
        assert {o.status for o in by_kind[part, "read"]} == {200}, part
        assert {o.status for o in by_kind[part, "write"]} == {201}, part
    # During: not one password checked; every login a quick 503 problem+json saying why.
    for observation in by_kind["during", "auth"]:
        assert observation.status == 503, observation
        assert observation.content_type == "application/problem+json", observation
        assert observation.code in FAIL_CLOSED_CODES, observation
        assert observation.retry_after is not None, observation
    assert max(o.seconds for o in during) < SLOWEST_ANSWER_SECONDS, "a worker hung on Redis"
    # Reads and writes fail open.
    assert {o.status for o in by_kind["during", "read"]} == {200}
    assert {o.status for o in by_kind["during", "write"]} == {201}
    # One alert for the outage (at most one per process per minute), severity high.
    assert _security_events(server) == [Severity.HIGH]
    print(
        f"\nredis outage: {len(before)} requests before, {len(during)} during "
        f"({len(by_kind['during', 'auth'])} logins, all 503), {len(after)} after; logins "
        f"answered again {recovered_at - up_at:.2f}s after Redis returned, no restart"
    )
