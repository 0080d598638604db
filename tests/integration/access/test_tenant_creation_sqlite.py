"""Tenant creation on SQLite when authentication has just written to the database.

The keyring provisions the tenant's data key in a transaction of its own. If authentication
refreshed the session's last-seen time inside the request transaction, that transaction would
hold SQLite's write lock and the keyring would wait out the busy timeout and fail. The route
authenticates in its own committed transaction instead; this drives that path through the app.
"""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bastion.api.app import create_app
from bastion.bootstrap import build, initialise
from bastion.kernel.clock import FrozenClock
from tests.support.identity import CHEAP_ARGON2

PASSWORD = "correct horse battery staple"


@pytest.mark.anyio
async def test_a_tenant_is_created_at_once_right_after_a_session_touch(make_settings):
    settings = make_settings(identity=CHEAP_ARGON2)
    initialise(settings)
    clock = FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    container = build(settings, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            body = {"email": "touch@example.com", "password": PASSWORD}
            assert (await client.post("/api/v1/auth/signup", json=body)).status_code == 201
            token = (await client.post("/api/v1/auth/login", json=body)).json()["token"]
            client.cookies.clear()
            # Past the touch interval (a tenth of the idle timeout), within the idle timeout.
            clock.set(clock.now() + timedelta(minutes=10))
            started = time.monotonic()
            created = await client.post(
                "/api/v1/tenants",
                json={"name": "Touch", "slug": "touch"},
                headers={"Authorization": f"Bearer {token}"},
            )
            elapsed = time.monotonic() - started
        assert created.status_code == 201, created.text
        assert elapsed < 2, "waited on the SQLite write lock"
        assert container.keyring.key_versions(created.json()["id"])
    finally:
        container.engine.dispose()
