"""The cost of tenant resolution and the permission check, per request, in the same run.

In process (httpx over ASGI, no TLS or sockets, so the difference is not diluted by transport),
on SQLite, with the real app: ``GET /api/v1/me`` (authenticated, no tenant) is the baseline and
``GET /api/v1/tenants/{slug}`` (authenticated, membership read from the database, permission
checked) is measured. The baseline is not free either: ``/me`` reads the account and opens its
sealed e-mail address, so the figure says "about as dear as the cheapest authenticated route",
not the overhead in isolation. Rounds alternate between the two and the median of each is
reported. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bastion.api.app import create_app
from bastion.bootstrap import build, initialise
from bastion.settings import Settings
from bench.report import Figure, print_ratio

REQUESTS_PER_ROUND = 300
ROUNDS = 5
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_time_cost": 1, "argon2_parallelism": 1}


async def _round(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS_PER_ROUND):
        response = await client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return (time.perf_counter() - started) / REQUESTS_PER_ROUND * 1e6


async def _measure(data_dir: Path) -> tuple[float, float]:
    settings = Settings(_env_file=None, env="test", data_dir=data_dir, identity=CHEAP_ARGON2)
    initialise(settings)
    container = build(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
            body = {"email": "bench@example.com", "password": PASSWORD}
            await client.post("/api/v1/auth/signup", json=body)
            token = (await client.post("/api/v1/auth/login", json=body)).json()["token"]
            client.cookies.clear()
            headers = {"Authorization": f"Bearer {token}"}
            created = await client.post(
                "/api/v1/tenants", json={"name": "Bench", "slug": "bench"}, headers=headers
            )
            if created.status_code != 201:
                raise RuntimeError(created.text)
            me: list[float] = []
            tenant: list[float] = []
            await _round(client, "/api/v1/me", headers)  # warm-up
            for _ in range(ROUNDS):
                me.append(await _round(client, "/api/v1/me", headers))
                tenant.append(await _round(client, "/api/v1/tenants/bench", headers))
        return statistics.median(tenant), statistics.median(me)
    finally:
        container.engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tenant, me = asyncio.run(_measure(Path(scratch) / "data"))
    print_ratio(
        Figure("GET /api/v1/tenants/{slug} (tenant + permission)", tenant, "µs/request"),
        Figure("GET /api/v1/me (authenticated, no tenant)", me, "µs/request"),
        note=f"SQLite, in process, median of {ROUNDS} rounds of {REQUESTS_PER_ROUND}; "
        f"difference {tenant - me:,.0f} µs",
    )


if __name__ == "__main__":
    main()
