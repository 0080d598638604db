"""Tenant API keys over real TLS against a real `bastion serve`: created with a step-up, shown
once, used as a bearer token on tenant routes only, narrowed to the creator's current role, and
dead on the very next request after a revoke, a removal or "revoke all"."""

import secrets

import pyotp
import pytest

from tests.support import server as server_support
from tests.support.http import bearer as _bearer
from tests.support.http import problem as _problem
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess

PASSWORD = "correct horse battery staple"
MEMBER_READ = "access:member:read"
INVITATION_READ = "access:invitation:read"
AUDIT_READ = "audit:event:read"
COLLECTION_READ = "records:collection:read"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**CHEAP_ARGON2_ENV, "BASTION_RATE_LIMITS__AUTH": "1000/minute"}
    process = ServerProcess(tmp_path_factory.mktemp("api-keys") / "data", env=env)
    process.init()
    # Start-up imports take far longer than usual on a loaded shared machine.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server_support, "STARTUP_TIMEOUT_SECONDS", 90)
        try:
            process.start()
            yield process
        finally:
            process.stop()


class User:
    def __init__(self, server, name):
        self.server = server
        self.email = f"{name}@example.com"
        signed_up = server.client.post(
            "/api/v1/auth/signup", json={"email": self.email, "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        self.id = signed_up.json()["id"]
        self.token = self.login()
        self.recovery_codes = None

    def login(self):
        response = self.server.client.post(
            "/api/v1/auth/login", json={"email": self.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def enrol_totp(self):
        """Enrol an authenticator; confirming it proves a factor in this session (step-up)."""
        client = self.server.client
        secret = client.post("/api/v1/me/totp", headers=self.headers).json()["secret"]
        confirmed = client.post(
            "/api/v1/me/totp/confirm",
            json={"code": pyotp.TOTP(secret).now()},
            headers=self.headers,
        )
        assert confirmed.status_code == 200, confirmed.text
        self.recovery_codes = confirmed.json()["recovery_codes"]
        return self

    def request(self, method, path, headers=None, **kwargs):
        headers = {**self.headers, **(headers or {})}
        return self.server.client.request(method, path, headers=headers, **kwargs)


def _tenant(owner, slug):
    created = owner.request("POST", "/api/v1/tenants", json={"name": slug, "slug": slug})
    assert created.status_code == 201, created.text
    return created.json()


def _add(owner, slug, user, role):
    added = owner.request(
        "POST", f"/api/v1/tenants/{slug}/members", json={"user_id": user.id, "role": role}
    )
    assert added.status_code == 201, added.text


def _create_key(user, slug, permissions, **extra):
    response = user.request(
        "POST",
        f"/api/v1/tenants/{slug}/api-keys",
        json={"name": "ci deploy", "permissions": permissions, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_create_use_revoke_and_the_next_request_is_refused(server):
    owner = User(server, "keys-owner").enrol_totp()
    tenant = _tenant(owner, "keys-co")
    created = _create_key(
        owner, "keys-co", [MEMBER_READ, AUDIT_READ, COLLECTION_READ], expires_in_days=30
    )
    secret = created["key"]
    assert secret.startswith("bst_")
    assert created["prefix"] == "bst_"
    assert created["tail"] == secret[-4:]
    assert sorted(created["permissions"]) == sorted([MEMBER_READ, AUDIT_READ, COLLECTION_READ])
    assert created["created_by"] == owner.id

    members = server.client.get(f"/api/v1/tenants/{tenant['id']}/members", headers=_bearer(secret))
    assert members.status_code == 200, members.text
    assert [m["user_id"] for m in members.json()["items"]] == [owner.id]

    # Any requires() route takes the key: the records API too.
    collections = server.client.get("/api/v1/tenants/keys-co/collections", headers=_bearer(secret))
    assert collections.status_code == 200, collections.text
    listed = owner.request("GET", "/api/v1/tenants/keys-co/api-keys").json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    audit = server.client.get("/api/v1/tenants/keys-co/audit", headers=_bearer(secret))
    assert audit.status_code == 200, audit.text
    assert "api_key_created" in audit.text
    assert secret[4:] not in audit.text

    revoked = owner.request("DELETE", f"/api/v1/tenants/keys-co/api-keys/{created['id']}")
    assert revoked.status_code == 204, revoked.text
    refused = _problem(
        server.client.get("/api/v1/tenants/keys-co/members", headers=_bearer(secret)), 401
    )
    unknown_key = "bst_" + secrets.token_urlsafe(32)
    unknown = _problem(
        server.client.get("/api/v1/tenants/keys-co/members", headers=_bearer(unknown_key)), 401
    )
    assert (refused["code"], refused["detail"]) == (unknown["code"], unknown["detail"])
    assert owner.request("GET", "/api/v1/tenants/keys-co/api-keys").json()["items"] == []
    trail = owner.request("GET", "/api/v1/tenants/keys-co/audit").json()["items"]
    actions = [event["action"] for event in trail]
    assert {"access.api_key_created", "access.api_key_revoked", "access.api_key_refused"} <= set(
        actions
    )


def test_creation_needs_a_step_up_and_bad_bodies_are_refused_without_a_trace(server):
    owner = User(server, "stepper")
    bystander_token = owner.login()  # a session that will never prove a factor
    _tenant(owner, "step-co")
    refused = owner.request(
        "POST", "/api/v1/tenants/step-co/api-keys", json={"name": "x", "permissions": [MEMBER_READ]}
    )
    _problem(refused, 403, "identity.step_up_required")  # no second factor at all
    owner.enrol_totp()
    bystander = {"Authorization": f"Bearer {bystander_token}"}
    body = {"name": "x", "permissions": [MEMBER_READ]}
    _problem(
        server.client.post("/api/v1/tenants/step-co/api-keys", json=body, headers=bystander),
        403,
        "identity.step_up_required",
    )
    stepped = server.client.post(
        "/api/v1/auth/step-up", json={"code": owner.recovery_codes[0]}, headers=bystander
    )
    assert stepped.status_code == 204, stepped.text
    ok = server.client.post("/api/v1/tenants/step-co/api-keys", json=body, headers=bystander)
    assert ok.status_code == 201, ok.text

    bad_bodies = [
        ({"permissions": [MEMBER_READ]}, None),
        ({"name": "x", "permissions": [MEMBER_READ], "admin": True}, None),
        ({"name": "x", "permissions": MEMBER_READ}, None),
        ({"name": "x", "permissions": []}, None),
        ({"name": "x" * 101, "permissions": [MEMBER_READ]}, None),
        ({"name": "bad\nname", "permissions": [MEMBER_READ]}, None),
        ({"name": "x", "permissions": [MEMBER_READ] * 1000}, None),
        ({"name": "x", "permissions": [MEMBER_READ], "expires_in_days": 366}, None),
        ({"name": "x", "permissions": [MEMBER_READ], "expires_at": "2020-01-01T00:00:00Z"}, None),
        (
            {
                "name": "x",
                "permissions": [MEMBER_READ],
                "expires_in_days": 3,
                "expires_at": "2030-01-01T00:00:00Z",
            },
            "access.api_key_expiry_invalid",
        ),
        ({"name": "x", "permissions": ["root:everything"]}, "access.api_key_permission_invalid"),
    ]
    for bad, code in bad_bodies:
        problem = _problem(owner.request("POST", "/api/v1/tenants/step-co/api-keys", json=bad), 422)
        if code is not None:
            assert problem["code"] == code, problem
    named = _problem(
        owner.request(
            "POST",
            "/api/v1/tenants/step-co/api-keys",
            json={"name": "x", "permissions": ["root:everything"]},
        ),
        422,
    )
    assert named["permission"] == "root:everything"
    oversized = owner.request(
        "POST",
        "/api/v1/tenants/step-co/api-keys",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    _problem(oversized, 413)
    keys = owner.request("GET", "/api/v1/tenants/step-co/api-keys").json()["items"]
    assert [k["id"] for k in keys] == [ok.json()["id"]]


def test_a_key_reaches_its_own_tenant_with_its_own_permissions_and_nothing_else(server):
    owner = User(server, "scoped-owner").enrol_totp()
    _tenant(owner, "scope-a")
    other = _tenant(owner, "scope-b")
    stranger = User(server, "scope-stranger")
    reader = _create_key(owner, "scope-a", [MEMBER_READ, "access:apikey:manage"])["key"]
    key = _bearer(reader)

    for ref in (other["id"], "scope-b"):
        wrong = _problem(
            server.client.get(f"/api/v1/tenants/{ref}/members", headers=key),
            404,
            "access.tenant_not_found",
        )
    not_mine = server.client.get("/api/v1/tenants/scope-b/members", headers=stranger.headers)
    assert wrong["detail"] == _problem(not_mine, 404)["detail"]

    write = server.client.post(
        "/api/v1/tenants/scope-a/members",
        json={"user_id": stranger.id, "role": "viewer"},
        headers=key,
    )
    _problem(write, 403, "access.permission_denied")
    members = server.client.get("/api/v1/tenants/scope-a/members", headers=key).json()
    assert [m["user_id"] for m in members["items"]] == [owner.id]

    for method, path in (
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/me/sessions"),
        ("DELETE", "/api/v1/me/sessions"),
        ("POST", "/api/v1/me/totp"),
        ("GET", "/api/v1/tenants"),
        ("POST", "/api/v1/auth/logout"),
    ):
        _problem(
            server.client.request(method, path, headers=key), 403, "access.api_key_not_allowed"
        )
    _problem(
        server.client.post("/api/v1/tenants", json={"name": "n", "slug": "by-a-key"}, headers=key),
        403,
        "access.api_key_not_allowed",
    )
    minted = server.client.post(
        "/api/v1/tenants/scope-a/api-keys",
        json={"name": "child", "permissions": [MEMBER_READ]},
        headers=key,
    )
    _problem(minted, 403, "access.api_key_cannot_create_keys")
    trail = owner.request("GET", "/api/v1/tenants/scope-a/audit").json()["items"]
    denied = [e for e in trail if e["action"] == "access.permission_denied"]
    assert denied[0]["details"]["permission"] == "access:member:add"
    assert "api_key_id" in denied[0]["details"]
    reasons = {e["details"]["reason"] for e in trail if e["action"] == "access.api_key_refused"}
    assert reasons == {"other_tenant", "not_a_tenant_route"}


def test_the_creator_downgraded_then_removed_then_revoke_all_apply_on_the_next_request(server):
    owner = User(server, "gov-owner")
    _tenant(owner, "gov-co")
    admin = User(server, "gov-admin").enrol_totp()
    _add(owner, "gov-co", admin, "admin")
    key = _bearer(_create_key(admin, "gov-co", [MEMBER_READ, INVITATION_READ])["key"])
    assert server.client.get("/api/v1/tenants/gov-co/invitations", headers=key).status_code == 200

    downgraded = owner.request(
        "PATCH", f"/api/v1/tenants/gov-co/members/{admin.id}", json={"role": "member"}
    )
    assert downgraded.status_code == 200, downgraded.text
    _problem(
        server.client.get("/api/v1/tenants/gov-co/invitations", headers=key),
        403,
        "access.permission_denied",
    )
    assert server.client.get("/api/v1/tenants/gov-co/members", headers=key).status_code == 200

    removed = owner.request("DELETE", f"/api/v1/tenants/gov-co/members/{admin.id}")
    assert removed.status_code == 204, removed.text
    _problem(server.client.get("/api/v1/tenants/gov-co/members", headers=key), 401)

    # "Revoke all" from any session of the user kills every key of theirs, in every tenant.
    _tenant(admin, "own-co")
    own = _bearer(_create_key(admin, "own-co", [MEMBER_READ])["key"])
    assert server.client.get("/api/v1/tenants/own-co/members", headers=own).status_code == 200
    assert admin.request("DELETE", "/api/v1/me/sessions").status_code == 204
    _problem(server.client.get("/api/v1/tenants/own-co/members", headers=own), 401)
