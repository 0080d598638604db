"""The cost of row-level security per request on PostgreSQL, in the same run.

One database, two apps in process (httpx over ASGI): requests as the owner (no
``database.app_url``: RLS does not bind it and no context is bound) are the baseline; requests as
the application role (RLS on, ``bastion.user_id`` and ``bastion.tenant_id`` bound in every
transaction) are measured, on ``GET /api/v1/tenants/{slug}/members``. Rounds alternate and the
median of each is reported. Needs the local PostgreSQL (127.0.0.1:5432, trust auth, user
postgres); creates and drops its own database and role. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from bastion.api.app import create_app
from bastion.bootstrap import Container, build, initialise
from bastion.db import make_engine
from bastion.db.roles import grant_app_role
from bastion.settings import Settings
from bench.report import Figure, print_ratio

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUESTS_PER_ROUND = 200
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


async def _sign_in(client: httpx.AsyncClient) -> dict[str, str]:
    body = {"email": "bench-rls@example.com", "password": PASSWORD}
    await client.post("/api/v1/auth/signup", json=body)
    token = (await client.post("/api/v1/auth/login", json=body)).json()["token"]
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {token}"}
    created = await client.post(
        "/api/v1/tenants", json={"name": "Bench", "slug": "bench"}, headers=headers
    )
    if created.status_code != 201:
        raise RuntimeError(created.text)
    return headers


async def _measure(owner: Container, app_role: Container) -> tuple[float, float]:
    path = "/api/v1/tenants/bench/members"
    owner_transport = httpx.ASGITransport(app=create_app(owner))
    role_transport = httpx.ASGITransport(app=create_app(app_role))
    async with (
        httpx.AsyncClient(transport=owner_transport, base_url="https://bench") as as_owner,
        httpx.AsyncClient(transport=role_transport, base_url="https://bench") as as_role,
    ):
        headers = await _sign_in(as_owner)
        await _round(as_owner, path, headers)  # warm-up, both pools
        await _round(as_role, path, headers)
        baseline: list[float] = []
        measured: list[float] = []
        for _ in range(ROUNDS):
            baseline.append(await _round(as_owner, path, headers))
            measured.append(await _round(as_role, path, headers))
    return statistics.median(measured), statistics.median(baseline)


def main() -> None:
    database = f"bench_rls_{secrets.token_hex(4)}"
    role = f"bench_app_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    owner_url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    role_url = owner_url.replace("postgres@", f"{role}@", 1)
    containers: list[Container] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            base = {"env": "test", "data_dir": Path(scratch), "identity": CHEAP_ARGON2}
            settings = Settings(**base, database_url=owner_url)
            initialise(settings)
            engine = make_engine(owner_url)
            grant_app_role(engine, role)
            engine.dispose()
            containers.append(build(settings))
            with_role = Settings(**base, database_url=owner_url, database={"app_url": role_url})
            containers.append(build(with_role))
            measured, baseline = asyncio.run(_measure(containers[0], containers[1]))
    finally:
        for container in containers:
            container.read_audit.close()
            container.request_engine.dispose()
            container.engine.dispose()
        with psycopg.connect(owner_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    print_ratio(
        Figure("GET /tenants/{slug}/members as the application role (RLS)", measured, "µs/req"),
        Figure("the same as the owner (no RLS)", baseline, "µs/request"),
        note=f"PostgreSQL, in process, median of {ROUNDS} rounds of {REQUESTS_PER_ROUND}; "
        f"difference {measured - baseline:,.0f} µs",
    )


if __name__ == "__main__":
    main()
