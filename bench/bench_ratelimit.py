"""The cost of the rate-limit and detection layers per request, against the same route without
them, in the same run.

In process (httpx over ASGI, no TLS or sockets), on SQLite, with the real app built three times
over one data directory: rate limits and detection off (the baseline), on with counters in
process memory, and on with counters in Redis (127.0.0.1:6379, skipped if unreachable).

- ``GET /api/v1/me`` with a bearer token: a read, counted per address and per credential
  (two window hits) by the rate-limit middleware.
- ``POST /api/v1/auth/login`` with the right password: the auth limit (one hit) plus the login
  guard (block and lock lookups, a window slot taken and cleared, the device check).

Rounds alternate between the configurations and the median of each is reported. Limits are set
high enough never to refuse; nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api.app import create_app
from bastion.api.ratelimit import RateLimitMiddleware
from bastion.bootstrap import Container, build, initialise
from bastion.logs import configure_logging
from bastion.settings import LogSettings, RateLimitSettings, Settings
from bench.report import Figure, print_ratio

REQUESTS_PER_ROUND = 60
LOGINS_PER_ROUND = 15
ROUNDS = 10
# Per round of the middleware-only figure: a Redis hit is a round trip, a memory hit is not.
MIDDLEWARE_CALLS = {"memory": 20_000, "redis": 1_000}
REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
EMAIL = "bench@example.com"
CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_time_cost": 1, "argon2_parallelism": 1}
NEVER_REFUSE = {"auth": "10000000/minute", "read": "10000000/minute"}
Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None, env="test", data_dir=data_dir, identity=CHEAP_ARGON2, **overrides
    )


def _configurations(data_dir: Path) -> dict[str, Settings]:
    configurations = {
        "off": _settings(data_dir, rate_limits={"enabled": False}, detection={"enabled": False}),
        "memory": _settings(data_dir, rate_limits=NEVER_REFUSE),
    }
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        print("Redis unreachable at 127.0.0.1:6379: the Redis figures are skipped", flush=True)
        return configurations
    configurations["redis"] = _settings(
        data_dir,
        rate_limits={
            **NEVER_REFUSE,
            "storage_url": REDIS_URL,
            "key_prefix": f"bench-{uuid.uuid4().hex}",
        },
    )
    return configurations


async def _round(client: httpx.AsyncClient, request: Request, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        response = await request(client)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.text}")
    return (time.perf_counter() - started) / count * 1e6


async def _measure(data_dir: Path) -> dict[str, dict[str, float]]:
    configurations = _configurations(data_dir)
    initialise(configurations["off"])
    containers: dict[str, Container] = {name: build(s) for name, s in configurations.items()}
    try:
        clients = {
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(container)),
                base_url="https://bench",
            )
            for name, container in containers.items()
        }
        body = {"email": EMAIL, "password": PASSWORD}
        await clients["off"].post("/api/v1/auth/signup", json=body)
        token = (await clients["off"].post("/api/v1/auth/login", json=body)).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def me(client: httpx.AsyncClient) -> httpx.Response:
            return await client.get("/api/v1/me", headers=headers)

        async def login(client: httpx.AsyncClient) -> httpx.Response:
            client.cookies.clear()
            return await client.post("/api/v1/auth/login", json=body)

        samples: dict[str, dict[str, list[float]]] = {
            name: {"me": [], "login": []} for name in clients
        }
        for client in clients.values():  # warm-up: caches, connections, the device row
            await _round(client, me, 20)
            await _round(client, login, 5)
        names = list(clients)
        for round_number in range(ROUNDS):
            # Alternate the order, so that drift (checkpoints, other load) favours nobody.
            for name in names if round_number % 2 == 0 else reversed(names):
                client = clients[name]
                samples[name]["me"].append(await _round(client, me, REQUESTS_PER_ROUND))
                samples[name]["login"].append(await _round(client, login, LOGINS_PER_ROUND))
        for client in clients.values():
            await client.aclose()
        return {
            name: {kind: statistics.median(values) for kind, values in kinds.items()}
            for name, kinds in samples.items()
        }
    finally:
        for container in containers.values():
            container.engine.dispose()


async def _bare(_scope: Scope, _receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _calls(app: ASGIApp, scope: Scope, count: int) -> float:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(_message: Message) -> None:
        return None

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / count * 1e6


async def _middleware_only(storage_url: str | None, count: int) -> tuple[float, float]:
    """The middleware alone around an app that answers at once: a GET with a credential (two
    window hits), against the bare app, alternating, medians of rounds."""
    settings = RateLimitSettings(
        storage_url=storage_url, key_prefix=f"bench-{uuid.uuid4().hex}", **NEVER_REFUSE
    )
    limited = RateLimitMiddleware(_bare, settings=settings)
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/me",
        "headers": [(b"authorization", b"Bearer bench-token")],
        "state": {"client_ip": "203.0.113.1"},
    }
    on: list[float] = []
    off: list[float] = []
    for _ in range(5):
        on.append(await _calls(limited, scope, count))
        off.append(await _calls(_bare, scope, count))
    return statistics.median(on), statistics.median(off)


def _print_middleware_only(names: list[str]) -> None:
    for name in names:
        url = REDIS_URL if name == "redis" else None
        on, off = asyncio.run(_middleware_only(url, MIDDLEWARE_CALLS[name]))
        print_ratio(
            Figure(f"rate-limit middleware alone ({name}), GET with a credential", on, "µs/call"),
            Figure("the bare ASGI app", off, "µs/call"),
            note=f"difference {on - off:,.1f} µs: two window hits",
        )


def main() -> None:
    # One access-log line per request would be most of what is measured.
    configure_logging(LogSettings(level="warning"))
    with tempfile.TemporaryDirectory() as scratch:
        figures = asyncio.run(_measure(Path(scratch) / "data"))
    _print_middleware_only([name for name in ("memory", "redis") if name in figures])
    off = figures["off"]
    note = f"SQLite, in process, median of {ROUNDS} rounds"
    for name in ("memory", "redis"):
        if name not in figures:
            continue
        on = figures[name]
        print_ratio(
            Figure(f"GET /api/v1/me, rate limits on ({name})", on["me"], "µs/request"),
            Figure("the same, rate limits off", off["me"], "µs/request"),
            note=f"{note}; difference {on['me'] - off['me']:,.0f} µs",
        )
        print_ratio(
            Figure(f"POST /api/v1/auth/login, limits + detection ({name})", on["login"], "µs"),
            Figure("the same, both off", off["login"], "µs"),
            note=f"{note}; difference {on['login'] - off['login']:,.0f} µs",
        )


if __name__ == "__main__":
    main()
