"""The cost of counting requests for /metrics, against the same stack without the count.

In process (httpx over ASGI, no TLS or sockets), ``GET /healthz`` through Bastion's real app,
with the edge middleware's ``observe_request`` (route template, counter, histogram) and with it
replaced by a no-op; rounds alternate and the median of each is reported. Also the hook alone,
per call, against an empty function call. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx

from bastion.api import middleware
from bastion.api.app import create_app
from bastion.bootstrap import build, initialise
from bastion.observability.http import observe_request
from bastion.settings import Settings
from bench.report import Figure, print_ratio

REQUESTS_PER_ROUND = 500
ROUNDS = 7
HOOK_CALLS = 200_000


def _no_hook(scope: MutableMapping[str, Any], status: int, seconds: float) -> None:  # noqa: ARG001
    return None


async def _round(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS_PER_ROUND):
        response = await client.get("/healthz")
        if response.status_code != 200:
            raise RuntimeError(response.text)
    return (time.perf_counter() - started) / REQUESTS_PER_ROUND * 1e6


async def _healthz(data_dir: Path) -> tuple[float, float]:
    settings = Settings(_env_file=None, env="test", data_dir=data_dir, log={"level": "warning"})
    initialise(settings)
    container = build(settings)
    transport = httpx.ASGITransport(app=create_app(container))
    with_hook: list[float] = []
    without: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
        await _round(client)  # warm-up
        for _ in range(ROUNDS):
            middleware.observe_request = observe_request
            with_hook.append(await _round(client))
            middleware.observe_request = _no_hook
            without.append(await _round(client))
    middleware.observe_request = observe_request
    container.engine.dispose()
    return statistics.median(with_hook), statistics.median(without)


def _per_call(function: Any) -> float:
    route = type("Route", (), {"path": "/healthz"})()
    scope = {"method": "GET", "path": "/healthz", "route": route}
    started = time.perf_counter()
    for _ in range(HOOK_CALLS):
        function(scope, 200, 0.0001)
    return (time.perf_counter() - started) / HOOK_CALLS * 1e9


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        measured, baseline = asyncio.run(_healthz(Path(scratch) / "data"))
    print_ratio(
        Figure("in-process GET /healthz with request metrics", measured, "us/request"),
        Figure("the same without the metrics hook", baseline, "us/request"),
    )
    print_ratio(
        Figure("observe_request alone", _per_call(observe_request), "ns/call"),
        Figure("an empty function call", _per_call(_no_hook), "ns/call"),
    )


if __name__ == "__main__":
    main()
