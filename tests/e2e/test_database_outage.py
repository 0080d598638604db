"""Outage behaviour: PostgreSQL refuses and cuts the server's connections under load.

The server runs on its own PostgreSQL database; the outage is made for that database only
(``ALLOW_CONNECTIONS false`` and ``pg_terminate_backend`` on its sessions), so the shared
PostgreSQL server and every other test keep running. Readers (``GET /api/v1/me``) and a writer
(sign-ups) keep going throughout. While the database is away every request must answer
``503`` problem+json with ``Retry-After`` (never a generic 500) and quickly (no worker hangs on
a dead connection), and ``/readyz`` must say ``database``. When connections are allowed again
the same process must serve reads and writes, and report ready, without a restart.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.postgres import ADMIN_DSN
from tests.support.server import ServerProcess

# A server start (up to 90 s on a loaded machine), then phases of up to PHASE_DEADLINE_SECONDS.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(360)]

PASSWORD = "correct horse battery staple"
SLOWEST_ANSWER_SECONDS = 5.0  # anything slower during the outage is a hung worker
RECOVERY_SECONDS = 15
PHASE_DEADLINE_SECONDS = 60


@dataclass
class Observation:
    started: float
    status: int | None  # None: no answer within the client timeout
    seconds: float
    content_type: str = ""
    retry_after: str | None = None


@dataclass
class Recorder:
    seen: list[Observation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, client: httpx.Client, method: str, path: str, **kwargs) -> None:
        started = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError:
            observation = Observation(started, None, time.monotonic() - started)
        else:
            observation = Observation(
                started,
                response.status_code,
                time.monotonic() - started,
                response.headers.get("content-type", ""),
                response.headers.get("retry-after"),
            )
        with self.lock:
            self.seen.append(observation)

    def wait_for_answers(self, *, started_after: float, at_least_seconds: float) -> None:
        """Let the load run at least ``at_least_seconds`` and until some request started after
        ``started_after`` has been answered: on a loaded CI machine a fixed sleep can end a
        phase before any of its requests came back, leaving nothing to check."""
        begun = time.monotonic()
        deadline = begun + PHASE_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                answered = any(o.started > started_after for o in self.seen)
            if answered and time.monotonic() - begun >= at_least_seconds:
                return
            time.sleep(0.05)
        raise AssertionError(f"no request answered within {PHASE_DEADLINE_SECONDS}s")


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as connection:
        connection.execute(statement)


def _database_down(name: str) -> None:
    _admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
    # pg_terminate_backend only signals; on a loaded machine a backend can still answer a query
    # after it returns. Wait (timeout argument, PG 14+) and re-check until none is left, so the
    # outage has really begun when this returns.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _admin(
            sql.SQL(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = {}"
            ).format(sql.Literal(name))
        )
        with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
            left = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
        if left is not None and left[0] == 0:
            return
    raise AssertionError(f"backends of {name} did not exit")


def _database_up(name: str) -> None:
    _admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))


@pytest.fixture
def pg_server(postgres_databases, tmp_path):
    url = postgres_databases.create()
    name = url.rsplit("/", 1)[1]
    server = ServerProcess(tmp_path / "data", env={**CHEAP_ARGON2_ENV, "BASTION_DATABASE_URL": url})
    server.init()
    server.start()
    yield server, name
    _database_up(name)  # whatever happened, leave the database usable for drop_all
    server.stop()


def _load(
    server: ServerProcess, token: str, stop: threading.Event, recorder: Recorder
) -> list[threading.Thread]:
    headers = {"Authorization": f"Bearer {token}"}

    def reader() -> None:
        with _client(server) as client:
            while not stop.is_set():
                recorder.call(client, "GET", "/api/v1/me", headers=headers)
                time.sleep(0.02)

    def writer() -> None:
        with _client(server) as client:
            while not stop.is_set():
                email = f"outage-{secrets.token_hex(6)}@example.com"
                body = {"email": email, "password": PASSWORD}
                recorder.call(client, "POST", "/api/v1/auth/signup", json=body)
                time.sleep(0.02)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for thread in threads:
        thread.start()
    return threads


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=10)


def test_a_lost_database_is_a_quick_503_and_the_same_process_recovers(pg_server):
    server, name = pg_server
    client = server.client
    email = f"reader-{secrets.token_hex(4)}@example.com"
    assert client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD}
    ).is_success
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    token = login.json()["token"]

    recorder, stop = Recorder(), threading.Event()
    threads = _load(server, token, stop, recorder)
    try:
        recorder.wait_for_answers(started_after=0.0, at_least_seconds=1.0)
        cut_at = time.monotonic()
        _database_down(name)
        down_at = time.monotonic()  # refused and cut from here on
        recorder.wait_for_answers(started_after=down_at + 0.2, at_least_seconds=2.5)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "database" in ready.json()["checks"]
        up_at = time.monotonic()
        _database_up(name)
        recovered_at = _wait_until_serving(server, token)
        recorder.wait_for_answers(started_after=recovered_at, at_least_seconds=1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)

    seen = recorder.seen
    before = [o for o in seen if o.started + o.seconds < cut_at]  # answered before the cut
    # Started after the outage began and answered before it ended: a request in flight when the
    # database came back may rightly succeed.
    during = [o for o in seen if down_at + 0.2 < o.started and o.started + o.seconds < up_at]
    after = [o for o in seen if o.started > recovered_at]
    counts = (len(before), len(during), len(after))
    assert before, counts
    assert during, counts
    assert after, counts
    assert all(o.status in (200, 201) for o in before), {o.status for o in before}
    for observation in during:
        assert observation.status == 503, observation
        assert observation.content_type == "application/problem+json", observation
        assert observation.retry_after is not None, observation
    assert max(o.seconds for o in during) < SLOWEST_ANSWER_SECONDS, "a worker hung"
    assert all(o.status in (200, 201) for o in after), {o.status for o in after}
    assert not [o for o in seen if o.status is None or o.status == 500]
    print(
        f"\noutage: {len(before)} requests before, {len(during)} during (all 503), "
        f"{len(after)} after; recovered {recovered_at - up_at:.2f}s after the database returned"
    )


def _wait_until_serving(server: ServerProcess, token: str) -> float:
    deadline = time.monotonic() + RECOVERY_SECONDS
    with _client(server) as client:
        while time.monotonic() < deadline:
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            if me.status_code == 200 and client.get("/readyz").status_code == 200:
                return time.monotonic()
            time.sleep(0.1)
    raise AssertionError(f"not serving again {RECOVERY_SECONDS}s after the database came back")
