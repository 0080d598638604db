"""Authentication's bookkeeping writes never hold SQLite's write lock across a request.

A session's last-seen time is written every ``touch_interval``. Written at authentication, it
took SQLite's single write lock for the rest of the request; a record write that then needed the
keyring's own short transaction (reserving encryptions for the tenant's data key: the first
write for a tenant in a new process) waited on its own request until the busy timeout, and the
client got 503 after 5 s. The touch now runs just before the request commits.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e]

PASSWORD = "correct horse battery staple"
IDLE_TIMEOUT_SECONDS = 20  # touch interval: a tenth of it


@pytest.fixture
def server(tmp_path):
    env = {**CHEAP_ARGON2_ENV, "BASTION_IDENTITY__SESSION_IDLE_TIMEOUT_SECONDS": "20"}
    process = ServerProcess(tmp_path / "data", env=env)
    process.init()
    process.start()
    yield process
    process.stop()


def test_a_due_touch_and_a_first_encryption_in_a_new_process_do_not_wait_on_each_other(server):
    account = {"email": "toucher@example.com", "password": PASSWORD}
    assert server.client.post("/api/v1/auth/signup", json=account).status_code == 201
    login = server.client.post("/api/v1/auth/login", json=account).json()
    headers = {"Authorization": f"Bearer {login['token']}"}
    tenant = server.client.post(
        "/api/v1/tenants", json={"name": "Touch", "slug": "touch"}, headers=headers
    )
    assert tenant.status_code == 201, tenant.text
    created = server.client.post(
        "/api/v1/tenants/touch/collections", json={"name": "notes"}, headers=headers
    )
    assert created.status_code == 201, created.text

    server.stop()  # a new process holds no reserved encryptions for the tenant's key
    server.start()
    time.sleep(IDLE_TIMEOUT_SECONDS / 10 + 0.5)  # and the session's touch is due

    stored = server.client.post(
        "/api/v1/tenants/touch/collections/notes/records", json={"n": 1}, headers=headers
    )
    assert stored.status_code == 201, stored.text

    sessions = server.client.get("/api/v1/me/sessions", headers=headers).json()["items"]
    (current,) = [s for s in sessions if s["current"]]
    # The touch still happened, at the end of the request that was due for it.
    assert datetime.fromisoformat(current["last_seen_at"]) > datetime.fromisoformat(
        current["created_at"]
    )
