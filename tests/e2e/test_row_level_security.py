"""`bastion serve` on PostgreSQL as the application role (database.app_url), over TLS.

The server starts only with a role that row-level security binds, and then serves normally: the
request path's tenant context is bound per transaction. (The refusal of a role RLS would not
bind is tested in process: tests/integration/test_rls.py.)
"""

import pytest

from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.rls import app_role
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def owner_url(postgres_databases):
    return postgres_databases.create()


def _server(tmp_path, owner_url, app_url):
    env = {**CHEAP_ARGON2_ENV, "BASTION_DATABASE_URL": owner_url}
    server = ServerProcess(tmp_path / "data", env=env)
    server.init()  # as the owner: migrations need it
    server.env["BASTION_DATABASE__APP_URL"] = app_url
    return server


def _signed_in(server, email):
    body = {"email": email, "password": PASSWORD}
    assert server.client.post("/api/v1/auth/signup", json=body).status_code == 201
    token = server.client.post("/api/v1/auth/login", json=body).json()["token"]
    server.client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}


def test_the_server_serves_as_a_role_row_level_security_binds(tmp_path, owner_url):
    role = app_role(owner_url)
    server = _server(tmp_path, owner_url, role.url)
    try:
        server.start()
        # Ready means both connections answer: the owner's and the application role's.
        assert server.client.get("/readyz").status_code == 200
        owner = _signed_in(server, "rls-owner@example.com")
        stranger = _signed_in(server, "rls-stranger@example.com")
        created = server.client.post(
            "/api/v1/tenants", json={"name": "RLS Co", "slug": "rls-co"}, headers=owner
        )
        assert created.status_code == 201, created.text
        members = server.client.get("/api/v1/tenants/rls-co/members", headers=owner)
        assert members.status_code == 200, members.text
        assert len(members.json()["items"]) == 1
        refused = server.client.get("/api/v1/tenants/rls-co/members", headers=stranger)
        assert refused.status_code == 404
        assert server.client.get("/api/v1/tenants", headers=stranger).json()["items"] == []
    finally:
        server.stop()
        role.drop()
