"""The edge middleware on an in-process app: the paths a production route cannot be made to take."""

import json

import httpx
import pytest
from fastapi import FastAPI, Request

from bastion.api.errors import install_error_handlers
from bastion.api.middleware import EdgeMiddleware
from bastion.errors import Conflict, RateLimited

LIMIT = 2048


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there", field="slug")

    @app.get("/slow-down")
    async def slow_down() -> None:
        raise RateLimited(retry_after=7)

    app.add_middleware(EdgeMiddleware, max_body_bytes=LIMIT, trusted_proxies=(), hsts_max_age=60)
    return app


@pytest.fixture
def client():
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://test")


async def _chunks(total: int):
    for _ in range(total // 512):
        yield b"x" * 512


@pytest.mark.anyio
async def test_unexpected_exception_is_a_generic_500_problem_without_internals(client):
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500
    assert body["request_id"] == response.headers["x-request-id"]
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["strict-transport-security"] == "max-age=60; includeSubDomains"


@pytest.mark.anyio
async def test_streamed_body_over_the_limit_is_413_even_without_content_length(client):
    response = await client.post("/echo", content=_chunks(LIMIT * 4))
    assert response.status_code == 413
    assert response.json()["code"] == "http.413"


@pytest.mark.anyio
async def test_body_within_the_limit_passes(client):
    response = await client.post("/echo", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


@pytest.mark.anyio
async def test_app_errors_map_kind_to_status_and_keep_safe_details(client):
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json()["field"] == "slug"
    assert response.json()["type"].endswith("/conflict")


@pytest.mark.anyio
async def test_rate_limited_carries_retry_after(client):
    response = await client.get("/slow-down")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


@pytest.mark.anyio
async def test_a_plain_incoming_request_id_is_kept_and_a_forged_one_replaced(client):
    kept = await client.get("/conflict", headers={"X-Request-ID": "abc123-def456"})
    assert kept.headers["x-request-id"] == "abc123-def456"
    forged = await client.get("/conflict", headers={"X-Request-ID": 'x"\n{"level":"fake"}'})
    assert forged.headers["x-request-id"] != 'x"\n{"level":"fake"}'
    assert json.loads(forged.text)["request_id"] == forged.headers["x-request-id"]
