"""The cost of authenticating with an API key instead of a session token, per request, same run.

In process (httpx over ASGI, no TLS or sockets), on SQLite, with the real app: the same tenant
route, ``GET /api/v1/tenants/{slug}/members``, called with the owner's session token (baseline)
and with an API key of that owner (measured). A key costs one indexed lookup by digest (as a
session does), the narrowing to its tenant and permissions, and a last-used write at most once a
minute; the session path reads the session and the user. Rounds alternate between the two and
the median of each is reported. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import pyotp

from bastion.api.app import create_app
from bastion.bootstrap import build, initialise
from bastion.settings import Settings
from bench.report import Figure, print_ratio

REQUESTS_PER_ROUND = 300
ROUNDS = 5
PATH = "/api/v1/tenants/bench/members"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_time_cost": 1, "argon2_parallelism": 1}


async def _round(client: httpx.AsyncClient, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS_PER_ROUND):
        response = await client.get(PATH, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{PATH}: {response.status_code} {response.text}")
    return (time.perf_counter() - started) / REQUESTS_PER_ROUND * 1e6


async def _checked(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


async def _credentials(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    """A session token and an API key of the same owner of the tenant ``bench``."""
    body = {"email": "bench@example.com", "password": PASSWORD}
    await _checked(await client.post("/api/v1/auth/signup", json=body), 201)
    login = await _checked(await client.post("/api/v1/auth/login", json=body), 200)
    client.cookies.clear()
    session = {"Authorization": f"Bearer {login.json()['token']}"}
    tenant = {"name": "Bench", "slug": "bench"}
    await _checked(await client.post("/api/v1/tenants", json=tenant, headers=session), 201)
    # Creating a key needs a second factor proved in this session: enrolling proves one.
    enrolment = await _checked(await client.post("/api/v1/me/totp", headers=session), 200)
    code = pyotp.TOTP(enrolment.json()["secret"]).now()
    confirm = await client.post("/api/v1/me/totp/confirm", json={"code": code}, headers=session)
    await _checked(confirm, 200)
    wanted = {"name": "bench", "permissions": ["access:member:read"]}
    created = await client.post("/api/v1/tenants/bench/api-keys", json=wanted, headers=session)
    key = (await _checked(created, 201)).json()["key"]
    return session, {"Authorization": f"Bearer {key}"}


async def _measure(data_dir: Path) -> tuple[float, float]:
    settings = Settings(_env_file=None, env="test", data_dir=data_dir, identity=CHEAP_ARGON2)
    initialise(settings)
    container = build(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
            session, key = await _credentials(client)
            await _round(client, session)  # warm-up
            await _round(client, key)
            by_session: list[float] = []
            by_key: list[float] = []
            for _ in range(ROUNDS):
                by_session.append(await _round(client, session))
                by_key.append(await _round(client, key))
        return statistics.median(by_key), statistics.median(by_session)
    finally:
        container.engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        by_key, by_session = asyncio.run(_measure(Path(scratch) / "data"))
    print_ratio(
        Figure(f"GET {PATH} with an API key", by_key, "µs/request"),
        Figure("the same with a session token", by_session, "µs/request"),
        note=f"SQLite, in process, median of {ROUNDS} rounds of {REQUESTS_PER_ROUND}; "
        f"difference {by_key - by_session:,.0f} µs",
    )


if __name__ == "__main__":
    main()
