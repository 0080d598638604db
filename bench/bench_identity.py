"""Logins per second against the argon2id ceiling, and what authentication adds to a request.

- Ceiling: raw argon2id hashes per second on 2 processes (one per core) with the parameters
  `bastion serve` uses by default (OWASP: m=19 MiB, t=2, p=1). A login verifies one hash, so a
  perfect server would log people in at this rate.
- Logins: `POST /api/v1/auth/login` from 2 concurrent keep-alive clients against a real
  `bastion serve` over TLS (one process; argon2 runs in Starlette's threadpool and releases the
  GIL). Each login also writes a session and an audit entry. Target ratio >= 0.85 (issue 5).
- Latency: `GET /api/v1/me` with a bearer token (session looked up, user loaded, e-mail opened)
  against `GET /healthz`, one client, sequential: the median difference is what authentication
  adds to a request.

Nothing asserts on time; the ratios measured in the same run are the figures.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path

import argon2
from tests.support.server import ServerProcess

from bastion.settings import IdentitySettings
from bench.report import Figure, print_figure, print_ratio

RUN_SECONDS = 8.0
CLIENTS = 2
LATENCY_SAMPLES = 400
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway benchmark account


def _hash_for(seconds: float, counter: multiprocessing.sharedctypes.Synchronized) -> None:  # type: ignore[name-defined]
    defaults = IdentitySettings()
    hasher = argon2.PasswordHasher(
        time_cost=defaults.argon2_time_cost,
        memory_cost=defaults.argon2_memory_kib,
        parallelism=defaults.argon2_parallelism,
        type=argon2.Type.ID,
    )
    stored = hasher.hash(PASSWORD)
    deadline = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < deadline:
        hasher.verify(stored, PASSWORD)
        done += 1
    with counter.get_lock():
        counter.value += done


def argon2_ceiling(processes: int = CLIENTS, seconds: float = RUN_SECONDS) -> float:
    counter = multiprocessing.Value("i", 0)
    workers = [
        multiprocessing.Process(target=_hash_for, args=(seconds, counter)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counter.value / seconds


def logins_per_second(server: ServerProcess, seconds: float = RUN_SECONDS) -> float:
    counts = [0] * CLIENTS
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        import httpx

        with httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=30) as c:
            while time.perf_counter() < deadline:
                response = c.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
                if response.status_code == 200:
                    counts[index] += 1
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"login failed during the benchmark: {failures[0]}")
    return sum(counts) / (time.perf_counter() - started)


def median_latency_ms(server: ServerProcess, path: str, headers: dict[str, str]) -> float:
    client = server.client
    for _ in range(20):
        client.get(path, headers=headers)
    samples = []
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as directory:
        server = ServerProcess(Path(directory) / "data", env={"BASTION_LOG__LEVEL": "warning"})
        server.init()
        server.start()
        try:
            signup = server.client.post(
                "/api/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}
            )
            if signup.status_code != 201:
                raise RuntimeError(f"sign-up failed: {signup.text}")
            logins = logins_per_second(server)
            token = server.client.post(
                "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
            ).json()["token"]
            bearer = {"Authorization": f"Bearer {token}"}
            health = median_latency_ms(server, "/healthz", {})
            me = median_latency_ms(server, "/api/v1/me", bearer)
        finally:
            server.stop()
    ceiling = argon2_ceiling()
    print_ratio(
        Figure(f"logins/s, {CLIENTS} clients, bastion serve", logins, "logins/s"),
        Figure(f"argon2id verifications/s on {CLIENTS} processes", ceiling, "hashes/s"),
        note="target >= 0.85",
    )
    print_ratio(
        Figure("GET /api/v1/me (bearer) median", me, "ms"),
        Figure("GET /healthz median", health, "ms"),
        note="sequential, one keep-alive client",
    )
    print_figure(Figure("authentication adds (median)", me - health, "ms"))


if __name__ == "__main__":
    main()
