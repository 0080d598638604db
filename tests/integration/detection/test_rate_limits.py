"""The rate-limit middleware behind the real edge middleware, in process, on memory and Redis."""

import uuid
from ipaddress import ip_network

import anyio
import httpx
import pytest
from limits.storage import storage_from_string
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.api.middleware import EdgeMiddleware
from bastion.api.ratelimit import RateLimitMiddleware, async_storage, classify
from bastion.observability.metrics import RATE_LIMITED
from bastion.settings import RateLimitSettings
from tests.integration.detection.conftest import REDIS_URL

DEAD_REDIS = "redis://127.0.0.1:1/0"


async def _ok(_request):
    return PlainTextResponse("ok")


def _app(settings: RateLimitSettings, alerts: list[str] | None = None, storage=None):
    inner = Starlette(
        routes=[
            Route("/api/v1/auth/login", _ok, methods=["POST"]),
            Route("/api/v1/things", _ok, methods=["GET", "POST"]),
            Route("/healthz", _ok),
        ]
    )
    limited = RateLimitMiddleware(
        inner,
        settings=settings,
        on_storage_down=(lambda: alerts.append("down")) if alerts is not None else None,
        storage=storage,
    )
    return EdgeMiddleware(
        limited,
        max_body_bytes=1024 * 1024,
        trusted_proxies=[ip_network("127.0.0.1/32")],
        hsts_max_age=0,
    )


def _run(app, requests):
    """Send ``(method, path, headers)`` in order; the responses."""
    return _run_all([(app, requests)])[0]


def _run_all(batches, storages=()):
    """Each ``(app, requests)`` in turn, in one event loop; Redis connections closed after."""

    async def go():
        answers = []
        for app, requests in batches:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
                answers.append([await client.request(m, p, headers=h) for m, p, h in requests])
        for storage in storages:
            await storage.bridge.storage.aclose()
        return answers

    return anyio.run(go)


def _from(ip, **extra):
    return {"x-forwarded-for": ip, **extra}


def _settings(**values):
    return RateLimitSettings(
        **{"auth": "3/minute", "read": "5/minute", "write": "4/minute", **values}
    )


def test_requests_are_classed_auth_write_read_and_the_probes_are_exempt():
    assert classify("POST", "/api/v1/auth/login") == "auth"
    assert classify("POST", "/api/v1/invitations/abc/accept") == "auth"
    assert classify("DELETE", "/api/v1/tenants/x/members/y") == "write"
    assert classify("GET", "/api/v1/auth/whatever") == "read"
    assert classify("OPTIONS", "/api/v1/me") == "default"
    assert classify("GET", "/healthz") is None
    assert classify("GET", "/readyz") is None


def test_over_the_auth_limit_answers_429_problem_json_with_retry_after_per_address():
    before = RATE_LIMITED.labels("auth")._value.get()
    app = _app(_settings())
    answers = _run(app, [("POST", "/api/v1/auth/login", _from("198.51.100.1"))] * 4)
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["code"] == "ratelimit.exceeded"
    assert refused.headers["x-request-id"]  # the edge wraps the refusal too
    assert RATE_LIMITED.labels("auth")._value.get() == before + 1
    # Another address has its own window; the probes are never limited.
    other = _run(app, [("POST", "/api/v1/auth/login", _from("198.51.100.2"))])
    assert other[0].status_code == 200
    assert all(r.status_code == 200 for r in _run(app, [("GET", "/healthz", {})] * 20))


def test_made_up_credentials_do_not_escape_the_address_limit():
    app = _app(_settings())
    requests = [
        ("GET", "/api/v1/things", _from("198.51.100.3", authorization=f"Bearer fake-{n}"))
        for n in range(6)
    ]
    assert [r.status_code for r in _run(app, requests)] == [200] * 5 + [429]


def test_one_credential_is_limited_across_addresses():
    app = _app(_settings())
    cookie = {"cookie": "__Host-bastion_session=abc; other=1"}
    requests = [
        ("POST", "/api/v1/things", _from(f"198.51.100.{10 + n}", **cookie)) for n in range(5)
    ]
    assert [r.status_code for r in _run(app, requests)] == [200] * 4 + [429]


def test_two_processes_sharing_redis_share_the_limit():
    settings = _settings(storage_url=REDIS_URL, key_prefix=f"test-{uuid.uuid4().hex}")
    storages = [async_storage(settings), async_storage(settings)]
    first, second = (_app(settings, storage=storage) for storage in storages)
    login = ("POST", "/api/v1/auth/login", _from("198.51.100.20"))
    one, two = _run_all([(first, [login] * 2), (second, [login] * 2)], storages)
    assert [r.status_code for r in one] == [200, 200]
    assert [r.status_code for r in two] == [200, 429]


def test_redis_down_fails_closed_on_auth_with_one_alert_and_open_elsewhere():
    alerts: list[str] = []
    settings = _settings(storage_url=DEAD_REDIS, storage_timeout_seconds=0.2)
    storage = async_storage(settings)
    app = _app(settings, alerts, storage)
    requests = [("POST", "/api/v1/auth/login", _from("198.51.100.30"))] * 3 + [
        ("GET", "/api/v1/things", _from("198.51.100.30"))
    ] * 10
    (answers,) = _run_all([(app, requests)], [storage])
    for refused in answers[:3]:
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "ratelimit.storage_unavailable"
        assert refused.headers["retry-after"] == "5"
    assert [r.status_code for r in answers[3:]] == [200] * 10
    assert alerts == ["down"]


def test_limits_in_settings_are_checked_at_start_up():
    with pytest.raises(ValueError, match=r"rate_limits\.auth"):
        RateLimitSettings(auth="often")
    with pytest.raises(ValueError, match="storage_url"):
        RateLimitSettings(storage_url="http://127.0.0.1:6379")
    assert storage_from_string("memory://")
